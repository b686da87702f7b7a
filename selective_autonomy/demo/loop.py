"""The main job: replay real traces, learn, go selective, report.

1. import the event log and split it chronologically: past (train the policy), present (copilot),
   future (selective);
2. train the policy on the past and put it in service in the copilot stage;
3. replay the present as concurrent live sessions through the worker; simulated operators answer
   every suggestion, and the feedback flows through Kafka into the store;
4. the feedback agent's learning loop trains the critic, certifies thresholds with MAPIE and
   promotes the process to selective; the worker hot-reloads;
5. replay the future through the same worker: the gate executes what it passes, operators answer
   the rest;
6. compute the time-to-autonomy curve and write the report.

The worker runs in this thread (faust needs the main event loop); the phases run in another.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, Field

from selective_autonomy.agents.worker import build_worker
from selective_autonomy.config import LearningSettings, Settings
from selective_autonomy.demo.autonomy_curve import AutonomyCurve, autonomy_curve
from selective_autonomy.demo.offline_loop import train_policy
from selective_autonomy.errors import SelautoError
from selective_autonomy.inference.embedded_policy import EmbeddedPolicy
from selective_autonomy.inference.ngram import NGramPolicy
from selective_autonomy.inference.registry import ModelRegistry, ServicePointer
from selective_autonomy.learning.apply import LearningReport
from selective_autonomy.learning.evidence import critic_examples
from selective_autonomy.schemas.event_parts import Stage
from selective_autonomy.schemas.process import ProcessSchema
from selective_autonomy.simulator.operator_model import HandlingTimeModel
from selective_autonomy.simulator.replay import replay_cases
from selective_autonomy.simulator.report import ReplayReport
from selective_autonomy.simulator.sessions import ReplayConfig
from selective_autonomy.store import FeedbackStore
from selective_autonomy.streams.runner import run_app_beside
from selective_autonomy.traces.eventlog import derive_process_schema, iter_cases, read_event_log
from selective_autonomy.traces.format import Case
from selective_autonomy.traces.mapping import load_mapping
from selective_autonomy.traces.split import chronological_order

Progress = Callable[[str], None]


class DemoConfig(BaseModel):
    log: Path
    mapping: str = "helpdesk"
    limit_cases: int | None = None
    fractions: tuple[float, float, float] = (0.4, 0.3, 0.3)
    concurrency: int = Field(default=50, ge=1)
    policy: str = Field(default="ngram", description="ngram or embedded")
    target_precision: float = 0.9
    confidence: float = 0.9
    min_calibration_samples: int = 100
    curve_checkpoints: tuple[int, ...] = (25, 50, 100, 200, 400, 800, 1600)
    audit_rate: float = Field(default=0.04, ge=0, le=1, description="Share of unattended steps operators review.")
    exploration_share: float = Field(
        default=0.05, ge=0, lt=1, description="Share of sessions that stay in copilot while their cluster is selective."
    )
    relearn_every: int = Field(
        default=300, ge=1, description="After going selective, rerun the learning loop every N feedback records."
    )
    timeout_s: float = 900.0


class DemoResult(BaseModel):
    process_id: str
    log: str
    cases: dict[str, int]
    policy_version: str
    copilot: ReplayReport
    learning: LearningReport
    relearning: list[LearningReport] = Field(default_factory=list)
    selective: ReplayReport
    curve: AutonomyCurve
    target_precision: float
    confidence: float
    stage_after_learning: dict[str, str]
    pointer: ServicePointer = Field(description="What was in service at the end: certificates, stages.")
    phase_seconds: dict[str, float]


def _train_policy(
    kind: str, schema: ProcessSchema, train: list[Case], registry: ModelRegistry
) -> EmbeddedPolicy | NGramPolicy:
    policy = train_policy(kind, schema, train)
    meta = policy.train_meta(train)
    policy.save(registry.process_dir(schema.process_id) / "policy" / meta.version, meta)
    return policy


def wait_until_stored(settings: Settings, process_id: str, answers: int, timeout_s: float) -> None:
    """Until the store holds ``answers`` feedback records of the process, each with its deferral."""
    deadline = time.monotonic() + timeout_s
    with FeedbackStore.open(settings.store.resolved_url(settings.data_dir)) as store:
        while True:
            counts = store.counts(process_id)
            stored = sum(counts.feedback_by_verdict.values())
            if stored >= answers and counts.feedback_without_proposal == 0:
                return
            if time.monotonic() > deadline:
                raise SelautoError(f"the store holds {stored} of {answers} copilot answers after {timeout_s:g} s")
            time.sleep(0.2)


def run_demo(settings: Settings, config: DemoConfig, progress: Progress = print) -> DemoResult:
    """Run the whole loop on the (already running) broker that ``settings`` point at."""
    timings: dict[str, float] = {}
    started = time.monotonic()
    table = read_event_log(config.log, load_mapping(config.mapping), limit_cases=config.limit_cases)
    schema = derive_process_schema(table)
    cases = chronological_order([c for c in iter_cases(table) if c.steps])
    n_train = int(len(cases) * config.fractions[0])
    n_copilot = int(len(cases) * config.fractions[1])
    train, copilot, future = cases[:n_train], cases[n_train : n_train + n_copilot], cases[n_train + n_copilot :]
    progress(
        f"imported {len(cases)} cases of {schema.process_id}: {len(train)} past (train), "
        f"{len(copilot)} present (copilot), {len(future)} future (selective)"
    )
    timings["import"] = time.monotonic() - started

    registry = ModelRegistry(settings.models_dir)
    registry.save_schema(schema)
    t = time.monotonic()
    copilot_policy = _train_policy(config.policy, schema, train, registry)
    version = copilot_policy.version
    registry.publish(schema.process_id, ServicePointer(policy=f"policy/{version}", default_stage=Stage.copilot))
    timings["train_policy"] = time.monotonic() - t
    progress(f"policy {version} in service; stage copilot")

    copilot_steps = sum(len(c.steps) for c in copilot)
    learning = LearningSettings(
        # The first run is started by the demo, once the store holds the whole copilot period.
        retrain_every_feedback=10**9,
        retrain_every_s=10 * config.timeout_s,
        monitor_every_s=0.5,
        target_precision=config.target_precision,
        confidence=config.confidence,
        min_calibration_samples=config.min_calibration_samples,
        exploration_share=config.exploration_share,
    )
    settings = settings.model_copy(
        update={"learning": learning, "worker": settings.worker.model_copy(update={"reload_interval_s": 0.5})}
    )
    worker = build_worker(settings)
    if worker.feedback is None or worker.feedback.scheduler is None:
        raise SelautoError("the demo needs the worker's feedback agent and learning loop")
    scheduler = worker.feedback.scheduler
    reports: list[LearningReport] = []

    def keep(report: LearningReport) -> None:
        if report.retrained or report.stage_changes:  # monitor runs that changed nothing are not news
            reports.append(report)

    scheduler.listeners.append(keep)
    handling = HandlingTimeModel.from_cases(train)
    phase_seconds: dict[str, float] = {}
    process = schema.process_id

    def phases() -> tuple[ReplayReport, ReplayReport]:
        t0 = time.monotonic()
        progress(f"copilot: replaying {len(copilot)} sessions ({copilot_steps} steps), operators answer each")
        copilot_report = replay_cases(
            settings,
            copilot,
            config=ReplayConfig(concurrency=config.concurrency, run_id="copilot"),
            handling=handling,
        )
        phase_seconds["copilot"] = time.monotonic() - t0
        t0 = time.monotonic()
        progress("learning: training the critic, certifying thresholds, deciding the stage")
        # Learn on the whole copilot period: the feedback agent stores answers and deferrals
        # from two topics independently, and a run that starts before both have caught up
        # sees fewer examples with their context (measured: 4,380 of 7,248 in one run, 6,120
        # in the next, and certified coverage 38% vs 57%).
        wait_until_stored(settings, process, copilot_report.feedback, config.timeout_s)
        scheduler.every_feedback = 1
        while not reports:
            if time.monotonic() - t0 > config.timeout_s:
                raise SelautoError("the learning loop did not report in time")
            time.sleep(0.2)
        revision = reports[-1].pointer_revision
        while worker.models.versions().get(process, {}).get("revision", 0) != revision:
            time.sleep(0.1)
        phase_seconds["learning"] = time.monotonic() - t0
        # From now on the loop keeps watching: audits of unattended steps and new deferrals
        # can demote the process (and later feedback re-promote it) while the future runs.
        scheduler.every_feedback = config.relearn_every
        stages = registry.pointer(process).stages
        progress(f"stages now: {', '.join(f'{k}={v.value}' for k, v in stages.items()) or 'unchanged'}")
        t0 = time.monotonic()
        progress(f"selective: replaying {len(future)} future sessions through the gate")
        selective_report = replay_cases(
            settings,
            future,
            config=ReplayConfig(concurrency=config.concurrency, run_id="selective", audit_rate=config.audit_rate),
            handling=handling,
        )
        phase_seconds["selective"] = time.monotonic() - t0
        return copilot_report, selective_report

    copilot_report, selective_report = run_app_beside(
        worker.app, phases, name="demo-phases", timeout_s=config.timeout_s
    )
    timings.update(phase_seconds)

    t = time.monotonic()
    progress("time to autonomy: recertifying on growing prefixes of the copilot feedback")
    with FeedbackStore.open(settings.store.resolved_url(settings.data_dir)) as store:
        rows = [r for r in store.feedback_with_context(process_id=process) if r.context is not None]
    copilot_rows = [r for r in rows if r.feedback.session_id.startswith("sim-copilot/")]
    examples = critic_examples(copilot_rows)
    days = max((cases[-1].started_at - cases[0].started_at).total_seconds() / 86400.0, 1.0)
    # The curve starts from the policy trained on the past, as the copilot stage did.
    curve = autonomy_curve(schema, copilot_policy, examples, config.curve_checkpoints, learning, len(cases) / days)
    timings["time_to_autonomy"] = time.monotonic() - t
    return DemoResult(
        process_id=process,
        log=str(config.log),
        cases={"train": len(train), "copilot": len(copilot), "future": len(future)},
        policy_version=version,
        copilot=copilot_report,
        learning=reports[0],
        relearning=reports[1:],
        pointer=registry.pointer(process),
        selective=selective_report,
        curve=curve,
        target_precision=config.target_precision,
        confidence=config.confidence,
        stage_after_learning={k: v.value for k, v in registry.pointer(process).stages.items()},
        phase_seconds={k: round(v, 1) for k, v in timings.items()},
    )
