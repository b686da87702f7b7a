"""The session state machine of a replay: which state to publish next, and what each decision means.

No Kafka here: :class:`SessionDriver` publishes through a :class:`Publisher` and is fed decisions
by the caller, so the whole replay logic is unit-tested with an in-memory decider, and
:mod:`selective_autonomy.simulator.replay` only wires it to the broker.

A replayed session follows its **recorded trajectory**: the state after step ``i`` is the BPM's
screen recorded after that step (``case.state_event(i + 1)``). A log records what the operator did,
not what would have followed a different action, so every judgement must be made against the
record. When an unattended step differs from what the operator did (an automation error: a
precision miss), the simulated operator notices it, undoes it and does the recorded step, paying
the interruption, the undo and the step itself (:meth:`HandlingTimeModel.correction_s`); the
session continues from the recorded state with the recorded action in its history. So every
executed step is judged on the screen the record shows, and realised precision is simply correct
executed steps / executed steps, over all steps (``after_wrong_step="back_on_record"``).

The earlier semantics (``"follow_record"``) kept the wrong action in the history while the screens
followed the record, so later steps were judged against a reference that no longer applied: on
Helpdesk it cost about 6 points of precision (docs/guarantee.md). It is kept only to measure that.

Audits sample executed steps with :class:`~selective_autonomy.schemas.sampling.SystematicSample`,
the console's rule (one scope per process here, one per partition there), and each carries its
sampling probability; their time is QA time, reported apart
from the handling time of sessions.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from selective_autonomy.schemas.event_parts import Action, Actor, new_id
from selective_autonomy.schemas.events import (
    ActionExecuted,
    CopilotFeedback,
    OperatorDeferral,
    UIStateChanged,
    action_id_for,
)
from selective_autonomy.schemas.sampling import SystematicSample
from selective_autonomy.simulator.errors import SimulatorError
from selective_autonomy.simulator.operator_model import HandlingTimeModel, OperatorModel
from selective_autonomy.simulator.report import AutomationError, ReplayReport, ReplayTally
from selective_autonomy.traces.format import Case, trace_event_id

DecisionRecord = ActionExecuted | OperatorDeferral
AfterWrongStep = Literal["back_on_record", "follow_record"]


class Publisher(Protocol):
    """Where the driver sends what the BPM and the operator produce."""

    def state(self, event: UIStateChanged) -> None: ...

    def feedback(self, event: CopilotFeedback) -> None: ...


class ReplayConfig(BaseModel):
    """How sessions are replayed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    concurrency: int = Field(default=10, ge=1, description="Sessions in flight at once.")
    decision_timeout_s: float = Field(
        default=30.0, gt=0, description="A session waiting longer than this for a decision is stalled."
    )
    run_id: str = Field(
        default_factory=lambda: new_id()[:8],
        min_length=1,
        description="Prefix of session ids ('sim-<run_id>/<case_id>'), so replays never collide with earlier ones.",
    )
    poll_s: float = Field(default=0.05, gt=0, description="Longest wait for decisions in one loop turn.")
    progress: bool = Field(default=True, description="Show a tqdm bar over sessions.")
    audit_rate: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="Share of unattended steps an operator reviews afterwards; each review is audit feedback "
        "(CopilotFeedback without a deferral), from which the realised precision is tracked.",
    )
    after_wrong_step: AfterWrongStep = Field(
        default="back_on_record",
        description="back_on_record: the operator undoes a wrong unattended step and does the recorded one; "
        "follow_record: the wrong action stays in the history (the earlier semantics, for comparison only).",
    )
    log_time: bool = Field(
        default=False,
        description="Stamp feedback with the recorded time of the step (offline runs: evidence windows in the "
        "log's own time) instead of the wall clock.",
    )
    final_state: bool = Field(
        default=False,
        description="After a case's last step, publish the screen it leaves (actor and last action set), as a "
        "platform does when a session ends: the trace recorder sees a case's ending action only there.",
    )
    day_s: float | None = Field(
        default=None,
        gt=0,
        description="Pacing: wall seconds per day of the log. A session starts no earlier than its case's start "
        "in log time, counted from the earliest case replayed and compressed by this; None: as fast as "
        "concurrency allows.",
    )


class SessionStatus(StrEnum):
    active = "active"
    completed = "completed"
    stalled = "stalled"


@dataclass
class SimSession:
    """One replayed case in flight."""

    session_id: str
    case: Case
    waiting_since: float
    step: int = 0  # the step whose decision is awaited
    performed: list[Action] = field(default_factory=list)
    deferrals: int = 0
    errors: int = 0
    attending: bool = False  # the operator handled the previous step
    status: SessionStatus = SessionStatus.active

    @property
    def recorded(self) -> Action:
        return self.case.steps[self.step].action


DecisionObserver = Callable[[SimSession, DecisionRecord], None]
"""Called with each decision the driver checks (once per step), before the session moves on."""


class SessionDriver:
    """Starts sessions, checks each decision once, answers deferrals, and advances sessions.

    :param clock: monotonic seconds (default ``time.monotonic``); tests pass a fake.
    :param observer: called with each checked decision and its session (default: nobody).
    """

    def __init__(
        self,
        publisher: Publisher,
        *,
        config: ReplayConfig | None = None,
        operator: OperatorModel | None = None,
        handling: HandlingTimeModel | None = None,
        clock: Callable[[], float] = time.monotonic,
        observer: DecisionObserver | None = None,
    ) -> None:
        self.publisher = publisher
        self.config = config or ReplayConfig()
        self.operator = operator or OperatorModel()
        self.handling = handling or HandlingTimeModel()
        self.clock = clock
        self.observer = observer
        self.tally = ReplayTally()
        self.audit_sample = SystematicSample(self.config.audit_rate)
        self.sessions: dict[str, SimSession] = {}
        self._active: set[str] = set()
        self._seen_ids: set[str] = set()

    @property
    def active(self) -> int:
        """Sessions waiting for a decision."""
        return len(self._active)

    @property
    def finished(self) -> int:
        """Sessions completed or stalled."""
        return self.tally.sessions_completed + len(self.tally.stalled)

    def session_id_for(self, case: Case) -> str:
        base = f"sim-{self.config.run_id}/{case.case_id}"
        candidate, n = base, 1
        while candidate in self.sessions:
            n += 1
            candidate = f"{base}#{n}"
        return candidate

    def start(self, case: Case) -> str:
        """Open a session for ``case`` and publish its first state; return the session id.

        :raises SimulatorError: if the case has no step.
        """
        if not case.steps:
            raise SimulatorError(f"case {case.case_id!r} has no step to replay")
        session = SimSession(self.session_id_for(case), case, waiting_since=self.clock())
        self.sessions[session.session_id] = session
        self._active.add(session.session_id)
        self.tally.sessions += 1
        self.tally.steps += len(case.steps)
        self.tally.baseline_time_s += self.handling.manual_case_s(case)
        self.publisher.state(self.state_event(session, Actor.system))
        return session.session_id

    def state_event(self, session: SimSession, actor: Actor) -> UIStateChanged:
        """The recorded screen before ``session.step``, re-keyed to the session, with the history
        of actions that actually ran (see the module docstring). Past the last step, the case's last
        screen at the time of its last step: the record holds no screen after it."""
        i = session.step
        steps = session.case.steps
        if i == len(steps):
            screen = session.case.state_event(i - 1)
            recorded = screen.model_copy(update={"state_version": i, "timestamp": steps[-1].timestamp})
        else:
            recorded = session.case.state_event(i)
        update: dict[str, object] = {
            "session_id": session.session_id,
            "event_id": trace_event_id(session.session_id, i),
        }
        if i > 0:
            last = session.performed[-1]
            window = len(recorded.ui_state.recent_actions)
            recent = session.performed[-window:] if window else []
            update |= {
                "actor": actor,
                "last_action": last,
                "last_action_id": action_id_for(session.session_id, i - 1, last),
                "ui_state": recorded.ui_state.model_copy(update={"recent_actions": recent}),
            }
        return recorded.model_copy(update=update)

    def _accept(self, record: DecisionRecord, record_id: str) -> SimSession | None:
        """The session a decision is for, or None (counted) when it must be ignored."""
        session = self.sessions.get(record.session_id)
        if session is None:
            self.tally.ignored["foreign_session"] += 1
            return None
        if record_id in self._seen_ids:
            self.tally.duplicates += 1
            return None
        if session.status is SessionStatus.stalled:
            self.tally.ignored["late"] += 1
            return None
        if session.status is SessionStatus.completed and record.state_version >= len(session.case.steps):
            self.tally.ignored["after_end"] += 1  # a decision on the screen a finished case left
            return None
        if session.status is SessionStatus.completed or record.state_version < session.step:
            # Another record for a step already checked: each step's decision counts once.
            self.tally.duplicates += 1
            return None
        if record.state_version > session.step:
            self.tally.ignored["out_of_order"] += 1
            return None
        self._seen_ids.add(record_id)
        return session

    def handle(self, record: DecisionRecord) -> None:
        """Check one decision from ``actions.executed`` or ``operator.deferrals``."""
        if isinstance(record, ActionExecuted):
            self.on_executed(record)
        else:
            self.on_deferral(record)

    def on_executed(self, record: ActionExecuted) -> None:
        session = self._accept(record, record.action_id)
        if session is None:
            return
        tally = self.tally
        tally.steps_executed += 1
        recorded = session.recorded
        correct = self.operator.accepts(record.action, recorded)
        performed = record.action
        if correct:
            tally.executed_correct += 1
        else:
            session.errors += 1
            tally.on_automation_error(
                AutomationError(
                    session_id=session.session_id,
                    case_id=session.case.case_id,
                    step=session.step,
                    executed=record.action,
                    recorded=recorded,
                )
            )
            if self.config.after_wrong_step == "back_on_record":
                tally.operator_time_s += self.handling.correction_s(recorded.action_type)
                performed = recorded
        self._maybe_audit(session, record, correct)
        if self.observer is not None:
            self.observer(session, record)
        session.performed.append(performed)
        session.attending = False
        self._advance(session, Actor.system)

    def _given_at(self, session: SimSession) -> dict[str, object]:
        """Feedback time: the recorded time of the step in log time, else now (the model's default)."""
        if not self.config.log_time:
            return {}
        return {"given_at": session.case.steps[session.step].timestamp}

    def _maybe_audit(self, session: SimSession, record: ActionExecuted, correct: bool) -> None:
        """Review a sample of unattended steps, as a supervising operator would, at a context-switch cost."""
        rate = self.config.audit_rate
        if not self.audit_sample.picks(record.process_id, record.action_id):
            return
        self.tally.audits += 1
        self.tally.audits_corrected += int(not correct)
        self.tally.audit_time_s += self.handling.interruption_s
        self.publisher.feedback(
            CopilotFeedback.for_audit(
                record,
                operator_action=None if correct else session.recorded,
                operator_id=self.operator.config.operator_id,
                latency_ms=round(self.handling.interruption_s * 1000),
                inclusion_probability=rate,
                **self._given_at(session),
            )
        )

    def on_deferral(self, record: OperatorDeferral) -> None:
        session = self._accept(record, record.deferral_id)
        if session is None:
            return
        recorded = session.recorded
        answer = self.operator.answer(record.suggestion, recorded, key=f"{session.case.case_id}/{session.step}")
        cost_s = self.handling.deferred_step_s(recorded.action_type, attending=session.attending)
        tally = self.tally
        tally.steps_deferred += 1
        tally.deferrals_by_reason[record.reason.value] += 1
        tally.feedback_by_verdict[answer.verdict.value] += 1
        tally.operator_noise += int(answer.noisy)
        tally.operator_time_s += cost_s
        feedback = self.operator.feedback(record, answer, latency_ms=round(cost_s * 1000))
        if self.config.log_time:
            feedback = feedback.model_copy(update=self._given_at(session))
        self.publisher.feedback(feedback)
        if self.observer is not None:
            self.observer(session, record)
        session.performed.append(answer.performed)
        session.deferrals += 1
        session.attending = True
        self._advance(session, Actor.operator)

    def _advance(self, session: SimSession, actor: Actor) -> None:
        session.step += 1
        if session.step == len(session.case.steps):
            session.status = SessionStatus.completed
            self._active.discard(session.session_id)
            self.tally.sessions_completed += 1
            self.tally.sessions_unattended += int(session.deferrals == 0 and session.errors == 0)
            if self.config.final_state:
                self.publisher.state(self.state_event(session, actor))
            return
        session.waiting_since = self.clock()
        self.publisher.state(self.state_event(session, actor))

    def expire(self) -> list[str]:
        """Mark sessions that waited longer than the timeout as stalled; return their ids."""
        now = self.clock()
        stalled = [
            sid for sid in self._active if now - self.sessions[sid].waiting_since > self.config.decision_timeout_s
        ]
        for sid in sorted(stalled):
            self.sessions[sid].status = SessionStatus.stalled
            self._active.discard(sid)
            self.tally.stalled.append(sid)
        return stalled

    def report(self, wall_time_s: float) -> ReplayReport:
        return self.tally.report(wall_time_s)
