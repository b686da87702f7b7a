"""Configuration: one frozen settings object built from defaults, an optional YAML file and
``SELAUTO_`` environment variables (highest precedence), e.g. ``SELAUTO_KAFKA__BOOTSTRAP_SERVERS``.

The YAML file is named by ``SELAUTO_CONFIG_FILE`` or passed explicitly to :func:`load_settings`.
Nothing else in the package reads the environment.
"""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, JsonValue, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from selective_autonomy.errors import ConfigError

CONFIG_FILE_ENV = "SELAUTO_CONFIG_FILE"


class BrokerProfile(StrEnum):
    """Which broker the clients talk to: ``kafka`` leaves client settings alone; ``tansu`` works
    around the embedded broker's measured gaps (see ``streams/kafka_config.py``)."""

    kafka = "kafka"
    tansu = "tansu"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# -- the edges: ingest and executor sections (SELAUTO_INGEST__*, SELAUTO_EXECUTOR__*) --------------

MIN_SECRET_CHARS = 16
"""Shortest bearer token or signing secret accepted: machine credentials have no excuse to be short."""


class IngestAuthMode(StrEnum):
    """How a platform proves who it is on ``POST /v1/ui-state``."""

    bearer = "bearer"  # Authorization: Bearer <token>
    hmac = "hmac"  # <signature_header>: sha256=<hex HMAC-SHA256 of the raw body>
    either = "either"  # one of the two; every credential presented must be valid


def _check_secrets(what: str, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
    for caller, secret in value.items():
        if not caller.strip():
            raise ValueError(f"a caller name of {what} may not be empty")
        if len(secret.get_secret_value()) < MIN_SECRET_CHARS:
            raise ValueError(f"the {what} entry of {caller!r} is shorter than {MIN_SECRET_CHARS} characters")
    return value


class IngestSettings(_Section):
    """The platform's webhook (`selauto ingest http`)."""

    host: str = Field(default="127.0.0.1", description="Interface uvicorn listens on.")
    port: int = Field(default=8088, ge=1, le=65535)
    auth: IngestAuthMode = Field(default=IngestAuthMode.either, description="bearer, hmac or either.")
    tokens: dict[str, SecretStr] = Field(
        default_factory=dict, description="caller name -> bearer token. The name is logged, never the token."
    )
    hmac_secrets: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="caller name -> HMAC-SHA256 signing secret; two entries for one caller allow a rotation.",
    )
    signature_header: str = Field(
        default="X-Selauto-Signature", min_length=1, description="Header carrying sha256=<hex> of the raw body."
    )
    publish_timeout_s: float = Field(
        default=5.0, gt=0, le=120, description="Longest wait for the broker's ack before answering 503."
    )
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024, description="Larger bodies get 413.")
    max_batch_items: int = Field(default=500, ge=1, le=100_000, description="Most events in one batch request.")

    @field_validator("tokens")
    @classmethod
    def _usable_tokens(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        return _check_secrets("ingest.tokens", value)

    @field_validator("hmac_secrets")
    @classmethod
    def _usable_secrets(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        return _check_secrets("ingest.hmac_secrets", value)


class RetrySettings(_Section):
    """Exponential backoff for transient failures (5xx, 408/425/429, timeouts, connection errors).

    Attempt ``n`` (from 1) waits ``min(max_delay_s, initial_delay_s * multiplier ** (n - 1))`` before
    the next one, spread by +/- ``jitter``; a ``Retry-After`` answer is honoured up to ``max_delay_s``.
    The action fails once ``max_attempts`` calls were made or the next wait would end after ``budget_s``.
    """

    max_attempts: int = Field(default=5, ge=1, le=100)
    initial_delay_s: float = Field(default=0.2, ge=0)
    multiplier: float = Field(default=2.0, ge=1)
    max_delay_s: float = Field(default=5.0, ge=0)
    budget_s: float = Field(default=30.0, gt=0, description="Longest time spent on one action, waits included.")
    jitter: float = Field(default=0.2, ge=0, le=1, description="Relative spread of each wait (0.2: +/-20 %).")


HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]

DEFAULT_BODY: JsonValue = {
    "action_id": "{action_id}",
    "session_id": "{session_id}",
    "process_id": "{process_id}",
    "business_cluster": "{business_cluster}",
    "state_version": "{state_version}",
    "action_type": "{action_type}",
    "arguments": "{arguments}",
    "executed_by": "{executed_by}",
    "operator_id": "{operator_id}",
}
"""The body a POST/PUT/PATCH route sends when it names none: the action and its session, typed."""


class HttpRoute(_Section):
    """How one action type is applied over HTTP. Templates: see :mod:`selective_autonomy.edges.executor.templates`."""

    method: HttpMethod = "POST"
    url: str = Field(
        min_length=1,
        description="URL template, absolute or relative to http.base_url, "
        "e.g. /sessions/{session_id}/orders/{arguments.order_id}/lookup (placeholders are percent-encoded).",
    )
    body: JsonValue | None = Field(
        default=None,
        description="JSON body template; a string that is exactly one placeholder keeps the value's type. "
        "None: the default envelope for POST/PUT/PATCH, no body for GET/DELETE.",
    )
    headers: dict[str, str] = Field(default_factory=dict, description="Header templates for this route.")
    timeout_s: float | None = Field(default=None, gt=0, description="Per-call timeout; default http.timeout_s.")


class HttpAdapterSettings(_Section):
    """The HTTP adapter: one route per action type (``*`` for every other type)."""

    base_url: str | None = Field(default=None, description="Prefix of relative route URLs.")
    routes: dict[str, HttpRoute] = Field(default_factory=dict, description="action type (or *) -> route.")
    headers: dict[str, str] = Field(default_factory=dict, description="Header templates sent on every call.")
    secret_headers: dict[str, SecretStr] = Field(
        default_factory=dict, description="Headers sent verbatim on every call (credentials); masked when shown."
    )
    timeout_s: float = Field(default=10.0, gt=0, description="Per-call timeout (connect, read, write).")
    max_connections: int = Field(default=32, ge=1)
    excerpt_chars: int = Field(default=500, ge=0, description="Response body kept in ActionFailed.")
    transient_statuses: list[int] = Field(
        default_factory=lambda: [408, 425, 429], description="Statuses retried besides every 5xx."
    )


class ExecutorSettings(_Section):
    """The BPM executor (`selauto executor`)."""

    group_id: str | None = Field(default=None, description="Consumer group; default <app_id>-executor.")
    adapter: Literal["http"] = Field(default="http", description="How actions reach the platform.")
    http: HttpAdapterSettings = Field(default_factory=HttpAdapterSettings)
    retry: RetrySettings = Field(default_factory=RetrySettings)
    health_host: str = Field(default="0.0.0.0", description="Interface of the health endpoint.")
    health_port: int = Field(default=6067, ge=0, le=65535, description="/healthz and /readyz; 0 picks a free port.")
    max_in_flight: int = Field(default=16, ge=1, description="Sessions applied concurrently (each in order).")
    poll_batch: int = Field(default=64, ge=1, le=10_000, description="Most records taken per poll.")
    publish_timeout_s: float = Field(default=10.0, gt=0, description="Longest wait for the ack of a failure record.")

    @model_validator(mode="after")
    def _poll_interval_fits(self) -> Self:
        # The consumer's max.poll.interval.ms is derived from these; librdkafka caps it at 24 h.
        if self.poll_batch * self.retry.budget_s > 86_000:
            raise ValueError("executor.poll_batch * executor.retry.budget_s must stay under 86000 s")
        return self

    def group(self, app_id: str) -> str:
        return self.group_id or f"{app_id}-executor"


# -- the operator console section (SELAUTO_CONSOLE__*) -------------------------------------------


class ConsoleSettings(BaseModel):
    """The operator console (`selauto console`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field(default="127.0.0.1", description="Interface uvicorn listens on.")
    port: int = Field(default=8080, ge=1, le=65535)
    operators: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="operator id -> access token. The token is the bearer token of API calls and the password "
        "of the login form; the id is what feedback records as operator_id. Nobody can log in while empty.",
    )
    operator_processes: dict[str, list[str]] = Field(
        default_factory=dict,
        description="operator id -> the process ids whose deferrals they see and answer; unlisted: every process.",
    )
    supervisors: list[str] = Field(
        default_factory=list,
        description="Operator ids who may also use the hand controls of the processes they see: set a stage, "
        "pause and resume autonomy (POST /api/processes/{id}/stage|pause|resume). Empty: nobody, from the "
        "console (`selauto stage|pause|resume` still work where the models directory is).",
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description="Signs session cookies and CSRF tokens; unset: a random key per start (sessions end on restart).",
    )
    session_ttl_s: int = Field(default=12 * 3600, ge=60, description="How long a login lasts.")
    cookie_secure: bool = Field(default=False, description="Send the session cookie over HTTPS only (set behind TLS).")
    active_session_window_s: float = Field(
        default=900.0, gt=0, description="A session counts as running unattended while it acted this recently."
    )
    ending_actions: list[str] = Field(
        default_factory=lambda: ["close_chat"], description="Action types after which a session has ended."
    )
    max_tracked_sessions: int = Field(
        default=100_000, ge=100, description="Sessions whose progress is remembered (least recently seen dropped)."
    )
    timezone: str = Field(default="UTC", description="IANA zone that decides when 'today' starts for the counters.")
    chat_turns: int = Field(default=8, ge=0, description="Newest chat turns shown on a card.")
    recent_actions: int = Field(default=6, ge=0, description="Newest actions shown on a card.")
    answer_timeout_s: float = Field(default=10.0, gt=0, description="Longest wait for the broker to ack an answer.")
    audit_rate: float = Field(
        default=0.05,
        ge=0.0,
        le=1.0,
        description="Share of unattended steps offered to operators for audit, sampled by action id (the same "
        "steps in every console replica); 0 offers none.",
    )
    max_pending_audits: int = Field(
        default=500, ge=1, description="Pending audits kept; beyond this the oldest are dropped."
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("operators")
    @classmethod
    def _usable_tokens(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for operator_id, token in value.items():
            if not operator_id.strip():
                raise ValueError("an operator id may not be empty")
            if len(token.get_secret_value()) < 8:
                raise ValueError(f"the token of operator {operator_id!r} is shorter than 8 characters")
        return value

    @model_validator(mode="after")
    def _supervisors_are_operators(self) -> ConsoleSettings:
        unknown = sorted(set(self.supervisors) - set(self.operators))
        if unknown:
            raise ValueError(f"supervisors {unknown} are not in console.operators")
        return self

    def is_supervisor(self, operator_id: str) -> bool:
        return operator_id in self.supervisors

    def processes_of(self, operator_id: str) -> frozenset[str] | None:
        """The processes ``operator_id`` answers for; None means every process."""
        listed = self.operator_processes.get(operator_id)
        return None if listed is None else frozenset(listed)


class KafkaSettings(_Section):
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


class TopicSettings(_Section):
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


class SchemaRegistrySettings(_Section):
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


class EmbeddedBrokerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535, description="0 picks a free port.")
    cluster_id: str = "selective-autonomy"
    start_timeout_s: float = 15.0


class WorkerSettings(_Section):
    """The decide/feedback worker (`selauto worker`)."""

    batch_size: int = Field(default=64, ge=1, description="Most UI states decided in one policy call.")
    batch_window_s: float = Field(default=0.005, gt=0, description="Longest wait to fill a batch.")
    reload_interval_s: float = Field(default=5.0, gt=0, description="How often models/current.json is checked.")
    health_port: int = Field(default=6066, ge=1, le=65535, description="/healthz and /readyz.")
    lag_interval_s: float = Field(
        default=15.0, gt=0, description="How often the consumer group's lag is read (not on the tansu profile)."
    )
    decide: bool = Field(default=True, description="Run the decide agent (ui.state -> decisions).")
    feedback: bool = Field(default=True, description="Run the feedback agent (store deferrals and feedback).")
    learning: bool = Field(
        default=True, description="Run the learning loop after feedback; enable it in one worker deployment only."
    )
    traces: bool = Field(
        default=True,
        description="With the feedback role: record every ui.state in the store's trace table, from a consumer "
        "group of its own (<app_id>-traces), so the decide path's group and commits are untouched.",
    )
    trace_batch: int = Field(default=500, ge=1, description="Most ui.state records stored in one transaction.")
    model_deadline_s: float = Field(
        default=2.0,
        gt=0,
        description="Longest wait for the models on one batch; past it the batch's states are deferred "
        "(model_unavailable). Models run off the event loop, so heartbeats and commits keep flowing.",
    )
    producer_linger_ms: float = Field(
        default=1.0,
        ge=0,
        description="linger.ms of the decide agent's producers (decisions and session table). The agent waits "
        "for each batch's acknowledgements, which sends what lingers at once, so this only batches records "
        "produced between those waits.",
    )


class TelemetrySettings(_Section):
    service_name: str = "selective-autonomy"
    otlp_endpoint: str | None = Field(
        default=None, description="OTLP/HTTP traces endpoint, e.g. http://otel:4318/v1/traces"
    )
    console: bool = Field(default=False, description="Print spans to stdout (local debugging).")


class StoreSettings(_Section):
    """The feedback store (feedback, proposals, applied action ids, stage history, model versions)."""

    url: SecretStr | None = Field(
        default=None, description="SQLAlchemy DSN, e.g. postgresql+psycopg://...; unset: SQLite in data_dir."
    )


class InferenceSettings(_Section):
    """An OpenAI-compatible inference server (vLLM) for the LLM policy and critic."""

    url: str | None = Field(default=None, description="LLM policy server: base URL with /v1, e.g. http://vllm:8000/v1")
    model: str | None = Field(default=None, description="Served policy model name; unset: the artefact's version.")
    critic_url: str | None = Field(default=None, description="LLM critic server (one vLLM serves one model).")
    critic_model: str | None = Field(default=None, description="Served critic model name.")
    timeout_s: float = Field(default=10.0, gt=0)
    max_retries: int = Field(default=2, ge=0)


class LearningSettings(_Section):
    """When and how feedback retrains the critic, recertifies thresholds, watches them and moves stages."""

    retrain_every_feedback: int = Field(default=500, ge=1, description="Run the learning loop after this many.")
    retrain_every_s: float = Field(default=600.0, gt=0, description="...or after this long with any new feedback.")
    monitor_every_s: float = Field(
        default=1.0, gt=0, description="Longest wait before a judged unattended step (audit) reaches the monitor."
    )
    monitor_arl: float = Field(
        default=10_000.0,
        gt=1,
        description="The change detector's threshold: judged steps at the target between false alarms, on average.",
    )
    target_precision: float = Field(default=0.9, gt=0, le=1, description="Certified precision of executed steps.")
    threshold_step: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="How far one judged unattended step moves its cluster's thresholds above the certified ones "
        "(a rejection raises them by step * target, an acceptance lowers them by step * (1 - target)); 0: never.",
    )
    confidence: float = Field(
        default=0.9, gt=0, lt=1, description="Probability that the precision holds; 1 - it bounds false alarms."
    )
    min_calibration_samples: int = Field(default=100, ge=10, description="Per (process, cluster, tier, action type).")
    certify_blocks: int = Field(
        default=1,
        ge=1,
        le=8,
        description="Consecutive time blocks of the certifying evidence; a threshold runs only where each block "
        "alone certifies it, so a period the pooled evidence averages away still counts (docs/guarantee.md).",
    )
    min_judgements: int = Field(
        default=50, ge=0, description="Judgements an action type needs in the certifying evidence to run unattended."
    )
    min_critic_examples: int = Field(
        default=3_000,
        ge=20,
        description="Training examples before a critic is trained and compared with the policy's confidence: the "
        "comparison costs the certificate the evidence it is made on (synthetic ABCD, 2,300 training examples: "
        "0% certified coverage with a trained candidate, 17.5% with the policy's confidence alone).",
    )
    policy_update_examples: int = Field(
        default=2_000, ge=20, description="Endorsed actions the policy has not learned from before it is updated."
    )
    holdout_fraction: float = Field(
        default=0.2, gt=0, lt=0.5, description="Unbiased evidence before the certifying part: fits, chooses the critic."
    )
    calibration_fraction: float = Field(
        default=0.3, gt=0, lt=0.6, description="Newest share of the unbiased evidence: certifies the thresholds."
    )
    recertify_after: int = Field(
        default=500,
        ge=1,
        description="New unbiased examples a selective cluster needs before it is recertified: every certificate is "
        "a test that may fail, so issuing one per run on nearly the same evidence would multiply the chances.",
    )
    window_feedback: int = Field(
        default=20_000, ge=100, description="Newest feedback records one run reads: bounds its cost as feedback grows."
    )
    exploration_share: float = Field(
        default=0.05, ge=0, lt=1, description="Share of sessions that stay in copilot while their cluster is selective."
    )
    critic: Literal["auto", "confidence"] = Field(
        default="auto",
        description="auto: choose among the policy-confidence critic, the critic in service and a newly trained one "
        "on evidence the certificate does not use; confidence: always the policy's own probability.",
    )
    min_certified_coverage: float = Field(default=0.05, ge=0, le=1, description="Promote to selective above this.")
    promotion: Literal["automatic", "confirmed"] = Field(
        default="automatic",
        description="copilot -> selective: automatic, the learning loop promotes a cluster once certified; "
        "confirmed, it proposes the promotion in the service pointer and a supervisor confirms it (selauto stage "
        "confirm, or the console). Demotions and logging -> copilot stay automatic either way.",
    )
    first_policy_cases: int = Field(
        default=300,
        ge=2,
        description="Complete cases recorded from ui.state before a process with no policy gets its first one, "
        "trained on them; its clusters then move from logging to copilot.",
    )
    first_policy_eval_fraction: float = Field(
        default=0.2, gt=0, lt=1, description="Newest share of those cases held out to measure the first policy's top-1."
    )
    first_policy_check_s: float = Field(
        default=10.0, gt=0, description="How often a process with no policy is checked for enough recorded cases."
    )
    trace_ending_actions: list[str] = Field(
        default_factory=lambda: ["close_chat"],
        description="Action types that end a recorded session: an operator's session ended by one is a complete case.",
    )
    trace_idle_s: float = Field(
        default=86_400.0,
        gt=0,
        description="A recorded session with no new state for this long (by state timestamps, against the newest "
        "state of its process) is a complete case too, without an invented ending.",
    )
    window_cases: int = Field(
        default=20_000, ge=10, description="Newest complete cases one run reads from the trace table: bounds its cost."
    )


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
