"""The live loop without a broker: the real decision engine, session driver, feedback store and
learning loop, called directly. Used where the streaming path adds nothing but time: benchmarks,
offline evaluation of critics, and tests of the learning loop. The live path
(:mod:`selective_autonomy.simulator.replay`) runs the same sessions and operator through Kafka.

Feedback carries the recorded time of its step (``ReplayConfig.log_time``), so the learning loop's
windows, certificates and monitor run on the log's own clock.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from selective_autonomy.agents.decisions import DecisionEngine
from selective_autonomy.agents.feedback import proposal_of
from selective_autonomy.agents.gate import SessionProgress
from selective_autonomy.inference.registry import ModelRegistry, ProcessModels
from selective_autonomy.learning.apply import LearningReport
from selective_autonomy.learning.loop import LearningLoop
from selective_autonomy.schemas.event_parts import DeferralReason, Stage
from selective_autonomy.schemas.events import ActionExecuted, CopilotFeedback, OperatorDeferral, UIStateChanged
from selective_autonomy.simulator.errors import SimulatorError
from selective_autonomy.simulator.operator_model import HandlingTimeModel, OperatorModel
from selective_autonomy.simulator.report import ReplayReport
from selective_autonomy.simulator.sessions import AfterWrongStep, ReplayConfig, SessionDriver
from selective_autonomy.store.models import FeedbackWithContext
from selective_autonomy.store.repository import FeedbackStore
from selective_autonomy.traces.format import Case


def offline_copilot(
    models: ProcessModels,
    cases: Sequence[Case],
    operator: OperatorModel | None = None,
    batch: int = 512,
) -> Iterator[tuple[OperatorDeferral, CopilotFeedback]]:
    """Every step of ``cases`` deferred with the policy's suggestion, and the operator's answer.

    The session follows the recorded trajectory (as an operator performs each step). Feedback ids
    are derived from the deferral, so runs are reproducible.
    """
    operator = operator or OperatorModel()
    copilot = models.pointer.model_copy(update={"stages": {}, "default_stage": Stage.copilot})
    engine = DecisionEngine(
        {models.schema.process_id: ProcessModels(models.schema, models.policy, models.critic, copilot)}
    )
    pairs = [(case.state_event(i), step) for case in cases for i, step in enumerate(case.steps)]
    for start in range(0, len(pairs), batch):
        chunk = pairs[start : start + batch]
        for decision, (event, step) in zip(engine.decide([e for e, _ in chunk], {}), chunk, strict=True):
            deferral = decision.output()
            if not isinstance(deferral, OperatorDeferral):
                raise SimulatorError(f"the copilot stage produced {type(deferral).__name__}, not a deferral")
            answer = operator.answer(deferral.suggestion, step.action, key=f"{event.session_id}/{event.state_version}")
            feedback = operator.feedback(deferral, answer, latency_ms=0).model_copy(
                update={"feedback_id": f"fb-{deferral.deferral_id}", "given_at": step.timestamp + timedelta(seconds=1)}
            )
            yield deferral, feedback


def with_context(pairs: Sequence[tuple[OperatorDeferral, CopilotFeedback]]) -> list[FeedbackWithContext]:
    """The pairs as the feedback store would return them (each answer joined to its proposal)."""
    return [
        FeedbackWithContext(feedback=feedback, received_at=feedback.given_at, context=proposal_of(deferral))
        for deferral, feedback in pairs
    ]


def record_copilot(
    models: ProcessModels, cases: Sequence[Case], store: FeedbackStore, operator: OperatorModel | None = None
) -> int:
    """The copilot stage over ``cases`` written to ``store``; returns the feedback count."""
    pairs = list(offline_copilot(models, cases, operator))
    store.record_proposals([proposal_of(deferral) for deferral, _ in pairs])
    store.record_feedbacks([feedback for _, feedback in pairs])
    return len(pairs)


@dataclass
class _Publisher:
    """Keeps what the driver publishes, to be decided and stored in batches."""

    states: list[UIStateChanged] = field(default_factory=list)
    answers: list[CopilotFeedback] = field(default_factory=list)

    def state(self, event: UIStateChanged) -> None:
        self.states.append(event)

    def feedback(self, event: CopilotFeedback) -> None:
        self.answers.append(event)


@dataclass
class OfflineLearning:
    """Where the offline replay stores feedback and how often it runs the learning loop."""

    registry: ModelRegistry
    store: FeedbackStore
    loop: LearningLoop
    relearn_every: int = 500
    watch: bool = True
    reports: list[LearningReport] = field(default_factory=list)


def offline_replay(
    models: ProcessModels,
    cases: Sequence[Case],
    *,
    handling: HandlingTimeModel | None = None,
    operator: OperatorModel | None = None,
    concurrency: int = 256,
    run_id: str = "offline",
    audit_rate: float = 0.0,
    learning: OfflineLearning | None = None,
    after_wrong_step: AfterWrongStep = "back_on_record",
) -> ReplayReport:
    """The replay of :func:`~selective_autonomy.simulator.replay.replay_cases`, with the decision
    engine called directly instead of through Kafka: same sessions, gate, operator and report.

    Session progress (unattended steps so far) is tracked as the worker's session table would, so
    per-cluster guardrails apply. With ``learning``, deferrals and answers go into its store, the
    monitor runs after every batch that brought a judged unattended step, the whole loop after
    every ``relearn_every`` answers, and the engine picks up each new service pointer.
    """
    process_id = models.schema.process_id
    engine = DecisionEngine({process_id: models})
    publisher = _Publisher()
    driver = SessionDriver(
        publisher,
        config=ReplayConfig(
            concurrency=concurrency,
            run_id=run_id,
            progress=False,
            audit_rate=audit_rate,
            log_time=True,
            after_wrong_step=after_wrong_step,
        ),
        operator=operator,
        handling=handling or HandlingTimeModel.from_cases(cases),
    )
    pending = deque(case for case in cases if case.steps)
    unattended: Counter[str] = Counter()
    since_relearn = 0
    revision = models.pointer.revision
    started = time.monotonic()
    while pending or publisher.states:
        while pending and driver.active < concurrency:
            driver.start(pending.popleft())
        batch, publisher.states = publisher.states, []
        progress = {e.session_id: SessionProgress(autonomous_steps=unattended[e.session_id]) for e in batch}
        deferrals: list[OperatorDeferral] = []
        for decision in engine.decide(batch, progress):
            record = decision.output()
            if isinstance(record, ActionExecuted):
                unattended[record.session_id] += 1
            elif isinstance(record, OperatorDeferral):
                deferrals.append(record)
            else:
                raise SimulatorError(
                    f"stage {decision.stage.value} neither executes nor defers: replay needs copilot or selective"
                )
            driver.handle(record)
        answers, publisher.answers = publisher.answers, []
        if learning is None:
            continue
        learning.store.record_proposals([proposal_of(d) for d in deferrals])
        learning.store.record_feedbacks(answers)
        since_relearn += len(answers)
        exploring = {d.deferral_id for d in deferrals if d.reason is DeferralReason.exploration}
        judged = any(a.is_audit or a.deferral_id in exploring for a in answers)
        report = None
        if since_relearn >= learning.relearn_every:
            since_relearn = 0
            report = learning.loop.run(process_id)
        elif judged and learning.watch:
            report = learning.loop.run(process_id, retrain=False)
        if report is None:
            continue
        if report.retrained or report.stage_changes:
            learning.reports.append(report)
        if report.pointer_revision != revision:
            revision = report.pointer_revision
            engine = DecisionEngine({process_id: learning.registry.load(process_id)})
    return driver.report(time.monotonic() - started)
