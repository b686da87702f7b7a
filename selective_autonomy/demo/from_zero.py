"""From zero to selective, live: a process with no policy and no traces, run until it works unattended.

What ``selauto demo --from-zero`` runs on the embedded broker, with nothing but the process schema
and an empty models directory:

1. register the process from its schema, as ``selauto process add`` does: it starts in ``logging``
   with no model in service;
2. replay the log's cases in their own order as live sessions through the worker (the decide agent,
   the feedback agent with the learning loop, the trace recorder), paced by their start in log
   time: simulated operators work every deferred step, and each step they do comes back on
   ``ui.state`` as an operator ``UIStateChanged`` with its ``last_action``; the screen a session's
   last action leaves is published too, as a platform does when a session ends;
3. everything after that is the worker's own doing: the trace recorder stores the operators'
   sessions, the learning loop trains the first policy from them once
   ``learning.first_policy_cases`` complete cases are recorded and moves the process to
   ``copilot``, the operators' answers to its suggestions certify thresholds, and the loop moves
   the process to ``selective``; from then on the gate executes what it passes, operators audit a
   sample of it and work the rest;
4. the report (:mod:`selective_autonomy.demo.from_zero_report`) reads the timeline off the sessions
   and the loop's reports.

Nothing here trains or installs a model: the only models that serve are those the worker's loop
published. The worker runs in this thread (faust needs the main event loop); the sessions in another.
"""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path

from pydantic import BaseModel, Field

from selective_autonomy.agents.worker import build_worker
from selective_autonomy.config import LearningSettings, Settings
from selective_autonomy.demo.loop import Progress
from selective_autonomy.demo.timeline import SessionTracker, Timeline, build_timeline
from selective_autonomy.errors import SelautoError
from selective_autonomy.inference.artefact import ArtefactMeta, read_meta
from selective_autonomy.inference.registry import ModelRegistry, ServicePointer
from selective_autonomy.learning.apply import LearningReport
from selective_autonomy.learning.recorded import case_completion
from selective_autonomy.onboarding.processes import add_process
from selective_autonomy.onboarding.protocol import ChangeRequest
from selective_autonomy.simulator.replay import replay_cases
from selective_autonomy.simulator.report import ReplayReport
from selective_autonomy.simulator.sessions import ReplayConfig
from selective_autonomy.store import FeedbackStore
from selective_autonomy.store.models import ModelKind
from selective_autonomy.streams.runner import run_app_beside
from selective_autonomy.traces.eventlog import derive_process_schema, iter_cases, read_event_log
from selective_autonomy.traces.mapping import load_mapping
from selective_autonomy.traces.split import chronological_order

REGISTERED_BY = "selauto-demo"


class FromZeroConfig(BaseModel):
    """How the live run from zero is set up. The defaults are ``selauto demo --from-zero``'s."""

    log: Path
    mapping: str = "helpdesk"
    limit_cases: int | None = Field(default=None, ge=1, description="Only the first N cases of the log.")
    concurrency: int = Field(default=50, ge=1, description="Live sessions in flight at once, at most.")
    day_s: float | None = Field(
        default=0.3,
        gt=0,
        description="Wall seconds per day of the log: a session starts at its case's start in compressed log "
        "time, so the system's reaction times are small against the traffic; None: as fast as possible.",
    )
    first_policy_cases: int = Field(
        default=300, ge=2, description="learning.first_policy_cases: complete recorded cases before a first policy."
    )
    relearn_every: int = Field(default=300, ge=1, description="learning.retrain_every_feedback: answers per run.")
    target_precision: float = 0.9
    confidence: float = 0.9
    min_calibration_samples: int = 100
    audit_rate: float = Field(default=0.04, ge=0, le=1, description="Share of unattended steps operators review.")
    exploration_share: float = Field(
        default=0.05, ge=0, lt=1, description="Share of sessions that stay in copilot while their cluster is selective."
    )
    share_window: int = Field(default=50, ge=1, description="Sessions per point of the operator-share curve.")
    timeout_s: float = Field(default=1800.0, gt=0, description="The whole live run, at most.")


class FirstPolicy(BaseModel):
    """The policy the learning loop trained from the recorded traces, as its artefact describes it."""

    version: str
    path: str = Field(description="The artefact directory the loop wrote, relative to the models directory.")
    meta: ArtefactMeta
    recorded_by_loop: bool = Field(description="The store's model versions have it, written by the learning loop.")


class FromZeroResult(BaseModel):
    process_id: str
    log: str
    cases: int
    log_days: float
    config: FromZeroConfig
    replay: ReplayReport = Field(description="The whole live run, all stages together.")
    timeline: Timeline
    first_policy: FirstPolicy | None
    stage_history: list[str] = Field(description="The store's stage history: at, from -> to, reason.")
    service_changes: list[str] = Field(description="Changes made by hand (the registration only).")
    recorded_states: int = Field(description="ui.state records the trace recorder stored.")
    complete_cases: int = Field(description="Complete recorded cases in the trace table at the end.")
    worker: dict[str, object] = Field(description="The worker's counters at the end (/healthz metrics).")
    pointer: ServicePointer = Field(description="What was in service at the end: models, certificates, stages.")
    phase_seconds: dict[str, float]


def learning_settings(base: LearningSettings, config: FromZeroConfig) -> LearningSettings:
    """The learning loop's settings for the run: ``base`` (the configured ones) with the run's targets,
    and checks and runs often enough for sessions that arrive a log day every ``config.day_s``."""
    return base.model_copy(
        update={
            "first_policy_cases": config.first_policy_cases,
            "first_policy_check_s": 1.0,
            "retrain_every_feedback": config.relearn_every,
            "retrain_every_s": 30.0,
            "monitor_every_s": 0.5,
            "target_precision": config.target_precision,
            "confidence": config.confidence,
            "min_calibration_samples": config.min_calibration_samples,
            "exploration_share": config.exploration_share,
        }
    )


def run_from_zero(settings: Settings, config: FromZeroConfig, progress: Progress = print) -> FromZeroResult:
    """Run the process from zero on the (already running) broker that ``settings`` point at.

    :raises SelautoError: if the models directory already holds a process, or the run stalls.
    """
    timings: dict[str, float] = {}
    started = time.monotonic()
    table = read_event_log(config.log, load_mapping(config.mapping), limit_cases=config.limit_cases)
    schema = derive_process_schema(table)
    cases = chronological_order([c for c in iter_cases(table) if c.steps])
    if len(cases) < 2:
        raise SelautoError(f"{config.log} holds {len(cases)} cases with steps: too few to run")
    process = schema.process_id
    days = (cases[-1].started_at - cases[0].started_at).total_seconds() / 86_400.0
    registry = ModelRegistry(settings.models_dir)
    if registry.processes():
        raise SelautoError(
            f"{settings.models_dir} already holds {', '.join(registry.processes())}: the run from zero starts "
            "from an empty models directory"
        )
    with FeedbackStore.open(settings.store.resolved_url(settings.data_dir)) as store:
        add_process(
            registry,
            store,
            schema,
            ChangeRequest(by=REGISTERED_BY, reason="from zero: a schema, no traces, no model"),
        )
    timings["import_and_register"] = time.monotonic() - started
    progress(
        f"process {process} registered from its schema ({len(schema.business_clusters)} cluster(s), "
        f"{len(schema.action_names)} action types); no model, stage logging"
    )
    progress(
        f"live: {len(cases)} sessions over {days:.0f} days of the log"
        + (f", one day every {config.day_s:g} s" if config.day_s else "")
        + f"; first policy after {config.first_policy_cases} complete recorded cases"
    )

    learning = learning_settings(settings.learning, config)
    settings = settings.model_copy(
        update={"learning": learning, "worker": settings.worker.model_copy(update={"reload_interval_s": 0.5})}
    )
    worker = build_worker(settings)
    if worker.feedback is None or worker.feedback.scheduler is None or worker.feedback.traces is None:
        raise SelautoError("the run from zero needs the worker's feedback agent, learning loop and trace recorder")
    scheduler, recorder = worker.feedback.scheduler, worker.feedback.traces
    tracker = SessionTracker(cases[0].started_at)
    reports: list[tuple[float, LearningReport]] = []
    lock = threading.Lock()

    def keep(report: LearningReport) -> None:
        if not (report.retrained or report.stage_changes):  # checks and monitor runs that changed nothing
            return
        # When it was published: a stage change is stamped then; a report arrives after the writes that follow.
        at = min((tracker.elapsed_at(c.changed_at) for c in report.stage_changes), default=tracker.elapsed())
        with lock:
            reports.append((at, report))
        for change in report.stage_changes:
            progress(
                f"[{at:6.1f} s, {tracker.begun_by(at)} sessions] {change.business_cluster}: "
                f"{change.from_stage.value} -> {change.to_stage.value} ({change.reason})"
            )

    scheduler.listeners.append(keep)

    def live() -> ReplayReport:
        return replay_cases(
            settings,
            cases,
            config=ReplayConfig(
                concurrency=config.concurrency,
                run_id="live",
                audit_rate=config.audit_rate,
                final_state=True,
                day_s=config.day_s,
                decision_timeout_s=60.0,
            ),
            observer=tracker,
        )

    t = time.monotonic()
    tracker.restart()
    replay = run_app_beside(worker.app, live, name="from-zero-sessions", timeout_s=config.timeout_s)
    timings["live"] = time.monotonic() - t
    for future in list(scheduler.running.values()):  # a run still writing: let it finish before reading
        with contextlib.suppress(Exception):  # a run that failed was logged by the scheduler
            future.result(timeout=120)

    with lock:
        timeline = build_timeline(tracker.sessions(), tracker.first_in_stage, reports, window=config.share_window)
    pointer = registry.pointer(process)
    with FeedbackStore.open(settings.store.resolved_url(settings.data_dir)) as store:
        first = _first_policy(registry, store, process, [r for _, r in reports])
        history = [
            f"{move.at.isoformat(timespec='seconds')} {move.business_cluster}: "
            f"{move.from_stage.value if move.from_stage else '-'} -> {move.to_stage.value} ({move.reason})"
            for cluster in schema.business_clusters
            for move in store.stage_history(process, cluster.id)
        ]
        changes = [
            f"{c.kind.value} by {c.changed_by}: {c.reason} (revision {c.revision})"
            for c in store.service_changes(process)
        ]
        complete = store.count_complete_cases(process, case_completion(learning))
    return FromZeroResult(
        process_id=process,
        log=str(config.log),
        cases=len(cases),
        log_days=round(days, 1),
        config=config,
        replay=replay,
        timeline=timeline,
        first_policy=first,
        stage_history=history,
        service_changes=changes,
        recorded_states=recorder.recorded,
        complete_cases=complete,
        worker=worker.metrics.snapshot(),
        pointer=pointer,
        phase_seconds={k: round(v, 1) for k, v in timings.items()},
    )


def _first_policy(
    registry: ModelRegistry, store: FeedbackStore, process: str, reports: list[LearningReport]
) -> FirstPolicy | None:
    found = next((r for r in reports if r.policy_promoted and r.trace_cases > 0), None)
    if found is None:
        return None
    path = Path("policy") / found.policy_version
    meta = read_meta(registry.process_dir(process) / path)
    recorded = any(v.version == found.policy_version for v in store.model_versions(ModelKind.policy, process))
    return FirstPolicy(
        version=found.policy_version,
        path=str(Path(process) / path),
        meta=meta,
        recorded_by_loop=recorded,
    )
