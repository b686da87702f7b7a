"""Configuration: one frozen settings object built from defaults, an optional YAML file and
``SELAUTO_`` environment variables (highest precedence), e.g. ``SELAUTO_KAFKA__BOOTSTRAP_SERVERS``.

The YAML file is named by ``SELAUTO_CONFIG_FILE`` or passed explicitly to :func:`load_settings`.
Nothing else in the package reads the environment.

A leaf: every section lives here, one module per group of sections, and this package imports
nothing from the rest of the product but its exception root (``selective_autonomy.errors``), so any
component can take its section without pulling in another component.
"""

from selective_autonomy.config.console import ConsoleSettings
from selective_autonomy.config.edges import (
    DEFAULT_BODY,
    MIN_SECRET_CHARS,
    ExecutorSettings,
    HttpAdapterSettings,
    HttpMethod,
    HttpRoute,
    IngestAuthMode,
    IngestSettings,
    RetrySettings,
)
from selective_autonomy.config.learning import LearningSettings, StageRules
from selective_autonomy.config.messaging import (
    BrokerProfile,
    EmbeddedBrokerSettings,
    KafkaSettings,
    RegistryCompatibility,
    SchemaRegistrySettings,
    TopicSettings,
    WireFormat,
)
from selective_autonomy.config.runtime import (
    DB_FILE,
    DEFAULT_TOP_K,
    InferenceSettings,
    StoreSettings,
    TelemetrySettings,
    WorkerSettings,
)
from selective_autonomy.config.settings import CONFIG_FILE_ENV, Settings, load_settings, redacted

__all__ = [
    "CONFIG_FILE_ENV",
    "DB_FILE",
    "DEFAULT_BODY",
    "DEFAULT_TOP_K",
    "MIN_SECRET_CHARS",
    "BrokerProfile",
    "ConsoleSettings",
    "EmbeddedBrokerSettings",
    "ExecutorSettings",
    "HttpAdapterSettings",
    "HttpMethod",
    "HttpRoute",
    "InferenceSettings",
    "IngestAuthMode",
    "IngestSettings",
    "KafkaSettings",
    "LearningSettings",
    "RegistryCompatibility",
    "RetrySettings",
    "SchemaRegistrySettings",
    "Settings",
    "StageRules",
    "StoreSettings",
    "TelemetrySettings",
    "TopicSettings",
    "WireFormat",
    "WorkerSettings",
    "load_settings",
    "redacted",
]
