"""Settings of the running services: the worker, telemetry, the feedback store and the inference
server (``worker``, ``telemetry``, ``store``, ``inference`` sections)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr

from selective_autonomy.config._section import Section

DEFAULT_TOP_K = 5
"""Candidate actions proposed per UI state where no ``worker.top_k`` is at hand (offline runs, demos)."""

DB_FILE = "feedback.db"
"""The SQLite file of the feedback store under ``data_dir`` when ``store.url`` is unset."""


class WorkerSettings(Section):
    """The decide/feedback worker (`selauto worker`)."""

    batch_size: int = Field(
        default=256,
        ge=1,
        description="Most UI states decided in one batch (one policy and one critic call per process). A batch "
        "holds what arrived within batch_window_s, so this caps it only under backlog: 256 decided 15% more "
        "states per second at max rate than 64 (bench/README.md). With server-backed models keep one batch's "
        "call within model_deadline_s.",
    )
    top_k: int = Field(
        default=DEFAULT_TOP_K,
        ge=1,
        le=50,
        description="Candidate actions the policy proposes per UI state: the gate judges the first, the console "
        "offers the others to the operator.",
    )
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
        "(model_unavailable). Models that call a server (the LLM client) run off the event loop, so "
        "heartbeats and commits keep flowing; in-process models (embedded, n-gram) finish in milliseconds "
        "and run on it.",
    )
    freeze_heap: bool = Field(
        default=True,
        description="When the decide agent starts, move every object alive then (modules, models, the app) out "
        "of the garbage collector's reach (gc.freeze): a full collection then scans only what came after. "
        "Measured: full collections of the start-up heap paused the worker 121-160 ms each, the decide "
        "agent's p99 at 1,000 events/s.",
    )
    producer_linger_ms: float = Field(
        default=1.0,
        ge=0,
        description="linger.ms of the decide agent's producers (decisions and session table). The agent waits "
        "for each batch's acknowledgements, which sends what lingers at once, so this only batches records "
        "produced between those waits.",
    )


class TelemetrySettings(Section):
    service_name: str = "selective-autonomy"
    otlp_endpoint: str | None = Field(
        default=None, description="OTLP/HTTP traces endpoint, e.g. http://otel:4318/v1/traces"
    )
    console: bool = Field(default=False, description="Print spans to stdout (local debugging).")


class StoreSettings(Section):
    """The feedback store (feedback, proposals, applied action ids, stage history, model versions)."""

    url: SecretStr | None = Field(
        default=None, description="SQLAlchemy DSN, e.g. postgresql+psycopg://...; unset: SQLite in data_dir."
    )

    def resolved_url(self, data_dir: Path) -> str:
        """The store every process of a deployment shares: ``url``, or ``sqlite:///<data_dir>/feedback.db``
        (absolute, so processes started in other folders still meet in one file)."""
        if self.url is not None:
            return self.url.get_secret_value()
        return f"sqlite:///{(data_dir / DB_FILE).resolve()}"


class InferenceSettings(Section):
    """An OpenAI-compatible inference server (vLLM) for the LLM policy and critic."""

    url: str | None = Field(default=None, description="LLM policy server: base URL with /v1, e.g. http://vllm:8000/v1")
    model: str | None = Field(default=None, description="Served policy model name; unset: the artefact's version.")
    critic_url: str | None = Field(
        default=None, description="LLM critic server; unset: the policy's url (one LoRA-enabled vLLM serves both)."
    )
    critic_model: str | None = Field(default=None, description="Served critic model name.")
    timeout_s: float = Field(default=10.0, gt=0)
    max_retries: int = Field(default=2, ge=0)
    max_prompts_per_request: int = Field(
        default=256, ge=1, description="Prompts per completions request; a larger batch is sent in turn."
    )
