"""The decide agent's process on the real broker: the billing process with a ``lab`` cluster, n-gram
models trained on one flow, its events, and running the worker until it has decided enough."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from opentelemetry.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider

from selective_autonomy.agents.worker import build_worker
from selective_autonomy.config import Settings
from selective_autonomy.inference.ngram import NGramPolicy
from selective_autonomy.inference.registry import ModelRegistry, ServicePointer
from selective_autonomy.inference.thresholds import Thresholds
from selective_autonomy.schemas.event_parts import Action, ActionTier, Actor, Stage, UIState
from selective_autonomy.schemas.events import ActionExecuted, ActionProposed, OperatorDeferral, UIStateChanged
from selective_autonomy.schemas.process import BusinessCluster
from selective_autonomy.streams.consumer import EventConsumer
from selective_autonomy.streams.runner import RunTimeout, run_app_until
from selective_autonomy.traces.format import Case, TraceStep
from tests.factories import BILLING as SCHEMA
from tests.factories import T0
from tests.integration.reliability.helpers import committed_vs_end, readable_after_committed

PROCESS = SCHEMA.model_copy(update={"business_clusters": [*SCHEMA.business_clusters, BusinessCluster(id="lab")]})
FLOW = [
    Action(action_type="lookup_order", arguments={"order_id": "A1"}),
    Action(action_type="send_invoice"),
    Action(action_type="close_chat"),
]


def training_cases(n: int = 30) -> list[Case]:
    cases = []
    for c in range(n):
        steps = [
            TraceStep(
                state=UIState(recent_actions=FLOW[:i]),
                action=action,
                operator_id="op1",
                timestamp=T0 + timedelta(minutes=c, seconds=i + 1),
            )
            for i, action in enumerate(FLOW)
        ]
        cases.append(
            Case(
                case_id=f"train{c}",
                process_id="billing",
                business_cluster="retail",
                started_at=T0 + timedelta(minutes=c),
                steps=steps,
            )
        )
    return cases


def install_models(models_dir: Path, stages: dict[str, Stage]) -> None:
    registry = ModelRegistry(models_dir)
    registry.save_schema(PROCESS)
    cases = training_cases()
    policy = NGramPolicy(PROCESS).fit(cases)
    meta = policy.train_meta(cases)
    policy.save(registry.process_dir("billing") / "policy" / meta.version, meta)
    thresholds = Thresholds(
        values={f"billing/{c}/{t.value}": 0.5 for c in ("retail", "vip", "lab") for t in ActionTier}
    )
    registry.publish("billing", ServicePointer(policy=f"policy/{meta.version}", thresholds=thresholds, stages=stages))


def state(session: str, version: int, cluster: str, actor: Actor = Actor.system) -> UIStateChanged:
    return UIStateChanged(
        session_id=session,
        process_id="billing",
        business_cluster=cluster,
        state_version=version,
        actor=actor,
        ui_state=UIState(recent_actions=FLOW[:version]),
    )


def run_worker(
    settings: Settings,
    until: Callable[[object], bool],
    provider: TracerProvider | None = None,
    timeout_s: float = 60,
    meters: MeterProvider | None = None,
) -> object:
    worker = build_worker(settings, tracer_provider=provider, meter_provider=meters)
    seen: list[str] = [""]

    def check() -> bool:
        seen[0] = consumer_state(worker.app.consumer)  # the last view before a timeout stops the app
        return until(worker)

    try:
        run_app_until(worker.app, check, timeout_s=timeout_s)
    except RunTimeout as exc:
        raise AssertionError(
            f"{exc}: metrics {worker.metrics.snapshot()}; {committed_vs_end(settings)}; "
            f"{readable_after_committed(settings)}; consumer {seen[0]}"
        ) from exc
    return worker


def consumer_state(consumer: Any) -> str:
    """faust's and aiokafka's view of each ui.state partition, for a failure message: faust's last
    read, committed and acked offsets, aiokafka's position and pause flag, buffered records."""
    parts = []
    try:
        aio = consumer._thread._consumer
        assignment = aio._subscription.subscription.assignment if aio is not None else None
        for tp in sorted(consumer._read_offset, key=str):
            state = assignment.state_value(tp) if assignment is not None else None
            position = state._position if state is not None else None
            paused = state.paused if state is not None else None
            buffered = tp in aio._fetcher._records if aio is not None else None
            acked = sorted(consumer._acked.get(tp, []))[-5:]
            parts.append(
                f"[{tp.partition}] read {consumer._read_offset.get(tp)} committed {consumer._committed_offset.get(tp)} "
                f"acked {acked} position {position} paused {paused} buffered {buffered}"
            )
        parts.append(
            f"jumps {consumer.jumps} gaps {consumer.gaps} refused {consumer.refused_acks} rereads {consumer.rereads}"
        )
        parts.append(f"unacked {len(consumer._unacked_messages)} flow_active {consumer.flow_active}")
    except Exception as exc:  # diagnostics only: never mask the failure
        parts.append(f"({type(exc).__name__}: {exc})")
    return "; ".join(parts)


def decided(count: int) -> Callable[[object], bool]:
    return lambda worker: sum(worker.metrics.outcomes.values()) >= count  # type: ignore[attr-defined]


def read_all(settings: Settings) -> tuple[list[ActionExecuted], list[OperatorDeferral], list[ActionProposed]]:
    topics = settings.topics
    out = []
    for topic, model in (
        (topics.actions_executed, ActionExecuted),
        (topics.operator_deferrals, OperatorDeferral),
        (topics.actions_proposed, ActionProposed),
    ):
        with EventConsumer(settings, [topic], model) as consumer:
            out.append([r.event for r in consumer.iterate(idle_timeout_s=1.0) if r.event is not None])
    return out[0], out[1], out[2]  # type: ignore[return-value]
