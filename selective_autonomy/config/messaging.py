"""Settings of the messaging layer: Kafka clients, topic names, the Schema Registry and its wire
format, and the embedded broker (``kafka``, ``topics``, ``schema_registry``, ``broker`` sections)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Literal, Self

from pydantic import Field, SecretStr, model_validator

from selective_autonomy.config._section import Section


class BrokerProfile(StrEnum):
    """Which broker the clients talk to: ``kafka`` leaves client settings alone; ``tansu`` works
    around the embedded broker's measured gaps (see ``streams/kafka_config.py``)."""

    kafka = "kafka"
    tansu = "tansu"


class KafkaSettings(Section):
    """Client settings passed straight through to confluent-kafka and faust."""

    bootstrap_servers: str = Field(default="127.0.0.1:9092", description="Comma-separated host:port list.")
    profile: BrokerProfile = Field(default=BrokerProfile.kafka, description="kafka for real clusters, tansu embedded.")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_location: Path | None = None
    ssl_certificate_location: Path | None = None
    ssl_key_location: Path | None = None
    ssl_key_password: SecretStr | None = None
    client_id: str = "selective-autonomy"
    session_timeout_ms: int | None = Field(
        default=None,
        ge=1000,
        description="Consumer group session timeout; unset: the profile's (tansu: 6000) or the client's default.",
    )
    heartbeat_interval_ms: int | None = Field(
        default=None,
        ge=100,
        description="Consumer group heartbeat interval; unset: the profile's (tansu: 1000) or the client's default.",
    )
    extra: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="More librdkafka properties for confluent-kafka clients, verbatim."
    )

    @model_validator(mode="after")
    def _heartbeat_within_session(self) -> KafkaSettings:
        session, heartbeat = self.session_timeout_ms, self.heartbeat_interval_ms
        if session is not None and heartbeat is not None and heartbeat >= session:
            raise ValueError(f"heartbeat_interval_ms ({heartbeat}) must be below session_timeout_ms ({session})")
        return self


class TopicSettings(Section):
    """Topic names and how many partitions each gets when the project creates them."""

    ui_state: str = "ui.state"
    actions_proposed: str = "actions.proposed"
    actions_executed: str = "actions.executed"
    operator_deferrals: str = "operator.deferrals"
    copilot_feedback: str = "copilot.feedback"
    dead_letter: str = "dead.letter"
    stage_changes: str = "stage.changes"
    actions_failed: str = "actions.failed"
    partitions: int = Field(default=4, ge=1, description="Bounds how many workers share the load.")
    replication_factor: int = Field(default=1, ge=1)

    def names(self) -> dict[str, str]:
        return {
            "ui_state": self.ui_state,
            "actions_proposed": self.actions_proposed,
            "actions_executed": self.actions_executed,
            "operator_deferrals": self.operator_deferrals,
            "copilot_feedback": self.copilot_feedback,
            "dead_letter": self.dead_letter,
            "stage_changes": self.stage_changes,
            "actions_failed": self.actions_failed,
        }


class WireFormat(StrEnum):
    """``confluent``: magic byte + 4-byte schema id + Avro body; ``avro``: bare Avro body of the
    current schema (only for closed systems that share one schema version)."""

    confluent = "confluent"
    avro = "avro"


class RegistryCompatibility(StrEnum):
    """Compatibility levels of a Confluent Schema Registry subject (its API reference's names)."""

    BACKWARD = "BACKWARD"
    BACKWARD_TRANSITIVE = "BACKWARD_TRANSITIVE"
    FORWARD = "FORWARD"
    FORWARD_TRANSITIVE = "FORWARD_TRANSITIVE"
    FULL = "FULL"
    FULL_TRANSITIVE = "FULL_TRANSITIVE"
    NONE = "NONE"


class SchemaRegistrySettings(Section):
    """A Confluent Schema Registry; passed through to confluent-kafka's registry client."""

    url: str | None = Field(
        default=None,
        description="Schema Registry REST URL (comma-separated for several); unset: the package's id map.",
    )
    username: str | None = Field(default=None, description="Basic auth user.")
    password: SecretStr | None = Field(default=None, description="Basic auth password.")
    ssl_ca_location: Path | None = Field(default=None, description="CA bundle that signs the registry's certificate.")
    ssl_certificate_location: Path | None = Field(default=None, description="Client certificate (PEM) for mutual TLS.")
    ssl_key_location: Path | None = Field(default=None, description="The client certificate's private key (PEM).")
    ssl_key_password: SecretStr | None = None
    timeout_s: float = Field(default=5.0, gt=0, description="One request's timeout.")
    max_retries: int = Field(
        default=2, ge=0, description="Retries of a request that failed in transport or with a retriable status."
    )
    auto_register: bool = Field(
        default=True,
        description="Register the current contracts under their <topic>-value subjects; false: only look them up "
        "(subjects that the platform team registers), and fail at start-up when one is missing.",
    )
    compatibility: RegistryCompatibility | None = Field(
        default=RegistryCompatibility.BACKWARD,
        description="Level set on each subject before registering (the README's evolution rules are BACKWARD); "
        "null leaves the registry's own level alone.",
    )

    @model_validator(mode="after")
    def _key_needs_certificate(self) -> Self:
        if (self.ssl_key_location or self.ssl_key_password) and self.ssl_certificate_location is None:
            raise ValueError("schema_registry.ssl_key_location needs schema_registry.ssl_certificate_location")
        if self.password is not None and self.username is None:
            raise ValueError("schema_registry.password needs schema_registry.username")
        return self


class EmbeddedBrokerSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535, description="0 picks a free port.")
    cluster_id: str = "selective-autonomy"
    start_timeout_s: float = 15.0
