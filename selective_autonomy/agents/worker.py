"""`selauto worker`: one faust app with the decide agent, model hot-reload and health endpoints."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import faust
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import TracerProvider

from selective_autonomy.agents.decide import DecideAgent, DecisionHook
from selective_autonomy.agents.metrics import RuntimeMetrics
from selective_autonomy.agents.models_in_service import ModelsInService
from selective_autonomy.config import InferenceSettings, Settings
from selective_autonomy.errors import BrokerError
from selective_autonomy.inference.llm.settings import LLMClientSettings
from selective_autonomy.inference.loaders import ModelLoaders, builtin_loaders
from selective_autonomy.inference.registry import ModelRegistry
from selective_autonomy.streams.app import build_app
from selective_autonomy.streams.kafka_config import ProfileTweaks
from selective_autonomy.streams.lag import ConsumerLagReader
from selective_autonomy.streams.prometheus import SCRAPE_PATH, MetricsExposition
from selective_autonomy.streams.serialization import AvroCodec, codec_for

if TYPE_CHECKING:
    from selective_autonomy.agents.feedback import FeedbackAgent


@dataclass
class Worker:
    app: faust.App
    models: ModelsInService
    metrics: RuntimeMetrics
    decide: DecideAgent
    ready: dict[str, bool] = field(default_factory=lambda: {"assigned": False})
    generation: int = -1  # the consumer group generation of the current (or last) assignment
    feedback: FeedbackAgent | None = None


def build_worker(
    settings: Settings,
    *,
    web: bool = False,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
    exposition: MetricsExposition | None = None,
    on_decision: DecisionHook | None = None,
    app_options: dict[str, Any] | None = None,
    tweaks: ProfileTweaks | None = None,
) -> Worker:
    """The worker's faust app with its agents and timers.

    :param web: serve ``/healthz``, ``/readyz`` (and ``/metrics`` with an ``exposition``) on
        ``worker.health_port``; default off.
    :param meter_provider: where the instruments record; default the global provider.
    :param exposition: the Prometheus text of ``meter_provider`` (its reader is one of the
        provider's), served on ``/metrics`` when ``web``; default none.
    :param app_options: extra faust settings (:func:`build_app`); default none.
    :param tweaks: broker-profile tweaks replacing the profile's (:func:`build_app`); default the profile's.
    """
    app = build_app(
        settings, web_port=settings.worker.health_port if web else None, tweaks=tweaks, **(app_options or {})
    )
    metrics = RuntimeMetrics(meter_provider=meter_provider)
    # One registry, with the loaders this deployment serves, for the decide agent and the learning loop.
    registry = ModelRegistry(settings.models_dir, model_loaders(settings.inference))
    models = ModelsInService(registry, top_k=settings.worker.top_k, on_stages=metrics.on_stages)
    models.refresh()
    # One codec for every role: with a schema registry its subjects are registered and checked
    # here, before the app starts, and a registry that is down stops the worker now.
    codec = codec_for(settings)
    decide = DecideAgent(
        settings.kafka,
        settings.topics,
        settings.worker,
        models.current,
        codec,
        metrics,
        ending_actions=settings.learning.trace_ending_actions,
        on_decision=on_decision,
        tracer_provider=tracer_provider,
    )
    if settings.worker.decide:
        decide.register(app)
    worker = Worker(app=app, models=models, metrics=metrics, decide=decide)
    if settings.worker.feedback:
        worker.feedback = _feedback_agent(settings, registry, metrics, codec)
        worker.feedback.register(app)

    @app.timer(settings.worker.reload_interval_s)  # type: ignore[untyped-decorator]
    async def reload_models() -> None:
        models.refresh()

    if app.tweaks.reports_true_high_watermark:
        reader = ConsumerLagReader(settings.kafka, app.conf.id, consumed_topics(settings))

        @app.timer(settings.worker.lag_interval_s)  # type: ignore[untyped-decorator]
        async def read_consumer_lag() -> None:
            await refresh_consumer_lag(reader, metrics)

    else:
        metrics.on_consumer_lag([], NO_LAG_ON_TANSU)

    # Ready while the worker holds a settled assignment: not from a revocation until the next
    # assignment, i.e. not during a rebalance (a member may be assigned no partition at all).
    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def on_revoked(sender: Any, revoked: Any, **kwargs: Any) -> None:
        worker.ready["assigned"] = False

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]
    async def on_assigned(sender: Any, assigned: Any, **kwargs: Any) -> None:
        worker.generation = app.consumer_generation_id
        worker.ready["assigned"] = True

    if web:
        _add_health_pages(worker)
        if exposition is not None:
            _add_metrics_page(app, exposition)
    return worker


NO_LAG_ON_TANSU = "not read: the tansu broker profile's high watermark is wrong after multi-record batches"


def consumed_topics(settings: Settings) -> list[str]:
    """The topics this worker's roles consume through its consumer group."""
    topics = []
    if settings.worker.decide:
        topics.append(settings.topics.ui_state)
    if settings.worker.feedback:
        topics += [settings.topics.operator_deferrals, settings.topics.copilot_feedback]
    return topics


async def refresh_consumer_lag(reader: ConsumerLagReader, metrics: RuntimeMetrics) -> None:
    """Read the lag off the event loop; a broker that does not answer leaves the last reading."""
    try:
        metrics.on_consumer_lag(await asyncio.to_thread(reader.read))
    except BrokerError as exc:
        metrics.on_consumer_lag(None, f"last read failed: {exc}")


def model_loaders(inference: InferenceSettings) -> ModelLoaders:
    """The built-in loaders and, with an inference URL configured, the LLM kinds: LLM artefacts in
    the models directory are served by vLLM at the configured URLs."""
    if not (inference.url or inference.critic_url):
        return builtin_loaders()
    from selective_autonomy.inference.llm.loaders import llm_loaders

    return builtin_loaders().merged(llm_loaders(*llm_client_settings(inference)))


def llm_client_settings(inference: InferenceSettings) -> tuple[LLMClientSettings, LLMClientSettings]:
    """Where the LLM policy and the LLM critic are served. The critic's url falls back to the
    policy's: one LoRA-enabled server holds both adapters of every process."""

    def client(url: str | None, model: str | None) -> LLMClientSettings:
        return LLMClientSettings(
            url=url or LLMClientSettings().url,
            model=model,
            timeout_s=inference.timeout_s,
            max_retries=inference.max_retries,
            max_prompts_per_request=inference.max_prompts_per_request,
        )

    return client(inference.url, inference.model), client(inference.critic_url or inference.url, inference.critic_model)


def _feedback_agent(
    settings: Settings, registry: ModelRegistry, metrics: RuntimeMetrics, codec: AvroCodec
) -> FeedbackAgent:
    # Imported here: the feedback store and the learning loop (alembic, pandas, scikit-learn, MAPIE)
    # take seconds to import, which a decide-only worker (the chart's deciders) would pay at every
    # start, i.e. after every crash, while its partitions wait.
    from selective_autonomy.agents.feedback import FeedbackAgent, RetrainScheduler, stage_publisher
    from selective_autonomy.agents.traces import TraceRecorder, trace_group
    from selective_autonomy.learning.loop import LearningLoop
    from selective_autonomy.store import FeedbackStore

    store = FeedbackStore.open(settings.store.resolved_url(settings.data_dir))
    scheduler = None
    if settings.worker.learning:
        publish_stages = stage_publisher(settings.kafka, settings.topics, codec)
        scheduler = RetrainScheduler(
            lambda: LearningLoop(registry, store, settings.learning, publish_stages),
            settings.learning.retrain_every_feedback,
            settings.learning.retrain_every_s,
            settings.learning.monitor_every_s,
            first_policy_every_s=settings.learning.first_policy_check_s,
        )
    traces = None
    if settings.worker.traces:
        traces = TraceRecorder(
            settings.kafka,
            topic=settings.topics.ui_state,
            group=trace_group(settings.app_id),
            batch=settings.worker.trace_batch,
            store=store,
            registry=registry,
            codec=codec,
        )
    return FeedbackAgent(settings.topics, store, codec, metrics, scheduler, traces)


def _add_health_pages(worker: Worker) -> None:
    app = worker.app

    @app.page("/healthz")
    async def healthz(self: Any, request: Any) -> Any:
        body: dict[str, Any] = {"status": "ok", "metrics": worker.metrics.snapshot()}
        if worker.feedback is not None and worker.feedback.traces is not None:
            body["traces"] = worker.feedback.traces.health()
        return self.json(body)

    @app.page("/readyz")
    async def readyz(self: Any, request: Any) -> Any:
        loaded = worker.models.versions()
        ready = bool(loaded) and worker.ready["assigned"]
        body = {
            "ready": ready,
            "models": loaded,
            "load_errors": worker.models.load_errors,
            # Still ready: a worker whose models hang defers every state to an operator at once.
            "model_call_overdue": worker.decide.model_call_overdue,
            "partitions_assigned": worker.ready["assigned"],
            # Members of one group that are all ready in the same generation hold a settled
            # assignment together (tests and operators tell a finished rebalance by it).
            "generation": worker.generation,
        }
        return self.json(body, status=200 if ready else 503)


def _add_metrics_page(app: faust.App, exposition: MetricsExposition) -> None:
    @app.page(SCRAPE_PATH)
    async def prometheus_metrics(self: Any, request: Any) -> Any:
        body, content_type = exposition.render(request.headers.get("Accept"))
        # As a header: aiohttp refuses a content_type argument that carries a charset.
        return self.bytes(body, headers={"Content-Type": content_type})
