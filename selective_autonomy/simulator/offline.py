"""The copilot stage without a broker: the real decision engine proposes every step of recorded
cases, and the simulated operator answers each suggestion. Used where the streaming path adds
nothing but time: offline evaluation of critics, benchmarks, and tests of the learning loop.
The live path (:mod:`selective_autonomy.simulator.replay`) runs the same operator through Kafka.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from datetime import timedelta

from selective_autonomy.agents.decisions import DecisionEngine
from selective_autonomy.agents.feedback import proposal_of
from selective_autonomy.agents.gate import SessionProgress
from selective_autonomy.inference.registry import ProcessModels
from selective_autonomy.schemas.events import ActionExecuted, CopilotFeedback, OperatorDeferral, Stage, UIStateChanged
from selective_autonomy.simulator.errors import SimulatorError
from selective_autonomy.simulator.operator_model import HandlingTimeModel, OperatorModel
from selective_autonomy.simulator.report import ReplayReport
from selective_autonomy.simulator.sessions import ReplayConfig, SessionDriver
from selective_autonomy.store.models import FeedbackWithContext
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
            assert isinstance(deferral, OperatorDeferral)
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


class _Collect:
    """A publisher that keeps the states the driver publishes, to be decided in batches."""

    def __init__(self) -> None:
        self.states: list[UIStateChanged] = []

    def state(self, event: UIStateChanged) -> None:
        self.states.append(event)

    def feedback(self, event: CopilotFeedback) -> None:
        """Feedback needs no transport offline: the driver already tallied it."""


def offline_replay(
    models: ProcessModels,
    cases: Sequence[Case],
    *,
    handling: HandlingTimeModel | None = None,
    operator: OperatorModel | None = None,
    concurrency: int = 256,
    run_id: str = "offline",
) -> ReplayReport:
    """The replay of :func:`~selective_autonomy.simulator.replay.replay_cases`, with the decision
    engine called directly instead of through Kafka: same sessions, gate, operator and report.

    Session progress (unattended steps so far) is tracked as the worker's session table would, so
    per-cluster guardrails apply.
    """
    engine = DecisionEngine({models.schema.process_id: models})
    collect = _Collect()
    driver = SessionDriver(
        collect,
        config=ReplayConfig(concurrency=concurrency, run_id=run_id, progress=False),
        operator=operator,
        handling=handling or HandlingTimeModel.from_cases(cases),
    )
    pending = deque(case for case in cases if case.steps)
    unattended: Counter[str] = Counter()
    started = time.monotonic()
    while pending or collect.states:
        while pending and driver.active < concurrency:
            driver.start(pending.popleft())
        batch, collect.states = collect.states, []
        progress = {e.session_id: SessionProgress(autonomous_steps=unattended[e.session_id]) for e in batch}
        for decision in engine.decide(batch, progress):
            record = decision.output()
            if isinstance(record, ActionExecuted):
                unattended[record.session_id] += 1
                driver.handle(record)
            elif isinstance(record, OperatorDeferral):
                driver.handle(record)
            else:
                raise SimulatorError(
                    f"stage {decision.stage.value} neither executes nor defers: replay needs copilot or selective"
                )
    return driver.report(time.monotonic() - started)
