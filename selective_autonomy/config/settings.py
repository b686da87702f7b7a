"""The root settings object, which holds every section, and how it is loaded (defaults < YAML file <
environment < overrides)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Self

from pydantic import Field, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from selective_autonomy.config.console import ConsoleSettings
from selective_autonomy.config.edges import ExecutorSettings, IngestSettings
from selective_autonomy.config.learning import LearningSettings
from selective_autonomy.config.messaging import (
    EmbeddedBrokerSettings,
    KafkaSettings,
    SchemaRegistrySettings,
    TopicSettings,
    WireFormat,
)
from selective_autonomy.config.runtime import InferenceSettings, StoreSettings, TelemetrySettings, WorkerSettings
from selective_autonomy.errors import ConfigError

CONFIG_FILE_ENV = "SELAUTO_CONFIG_FILE"


class Settings(BaseSettings):
    """Everything configurable, frozen once built."""

    model_config = SettingsConfigDict(
        env_prefix="SELAUTO_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    topics: TopicSettings = Field(default_factory=TopicSettings)
    schema_registry: SchemaRegistrySettings = Field(default_factory=SchemaRegistrySettings)
    wire_format: WireFormat = WireFormat.confluent
    broker: EmbeddedBrokerSettings = Field(default_factory=EmbeddedBrokerSettings)
    app_id: str = Field(default="selective-autonomy", description="Kafka consumer group and faust app id.")
    data_dir: Path = Field(default=Path("runs"), description="Where stores, reports and faust state are written.")
    models_dir: Path = Field(default=Path("runs/models"), description="Process schemas and model versions in service.")
    datasets_dir: Path | None = Field(
        default=None,
        description="Public datasets the built-in log names resolve to, laid out as eventlogs/, sgd/ and abcd/; "
        "unset: the project's data/ folder (the Helpdesk log only).",
    )
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    learning: LearningSettings = Field(default_factory=LearningSettings)
    console: ConsoleSettings = Field(default_factory=ConsoleSettings)
    inference: InferenceSettings = Field(default_factory=InferenceSettings)
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    executor: ExecutorSettings = Field(default_factory=ExecutorSettings)

    @model_validator(mode="after")
    def _registry_needs_schema_ids(self) -> Self:
        if self.schema_registry.url and self.wire_format is WireFormat.avro:
            raise ValueError("schema_registry.url needs wire_format confluent: bare Avro carries no schema id")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if settings_cls.model_config.get("yaml_file"):
            sources.append(YamlConfigSettingsSource(settings_cls))
        return tuple(sources)


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build the settings: ``overrides`` > environment > YAML file > defaults."""
    if config_file is None and os.environ.get(CONFIG_FILE_ENV):
        config_file = Path(os.environ[CONFIG_FILE_ENV])
    if config_file is None:
        return Settings(**overrides)
    if not config_file.is_file():
        raise ConfigError(f"config file {config_file} does not exist")

    class _SettingsFromFile(Settings):
        model_config = SettingsConfigDict(yaml_file=config_file)

    return _SettingsFromFile(**overrides)


def redacted(settings: Settings) -> dict[str, Any]:
    """Settings as plain data with secrets masked, for `selauto config show` and logs."""
    dumped: dict[str, Any] = settings.model_dump(mode="json")
    return dumped
