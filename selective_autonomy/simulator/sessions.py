"""The session state machine of a replay: which state to publish next, and what each decision means.

No Kafka here: :class:`SessionDriver` publishes through a :class:`Publisher` and is fed decisions
by the caller, so the whole replay logic is unit-tested with an in-memory decider, and
:mod:`selective_autonomy.simulator.replay` only wires it to the broker.

A replayed session follows its **recorded trajectory**. The state after step ``i`` is the BPM's
screen recorded after that step (``case.state_event(i + 1)``), whatever was actually done: the
simulator cannot know what the BPM would have shown after a different action. What it does know
is which action actually ran, so the published state's ``last_action``, ``last_action_id`` and
``ui_state.recent_actions`` reflect the executed (or operator-performed) actions, not the recorded
ones. An unattended action that differs from the recorded one is counted as an automation error
(a precision miss) and the session continues along the record. From then on the session's history
no longer matches the record it follows, so the report also gives precision over the steps taken
before any divergence (``precision_on_record``).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from selective_autonomy.schemas.events import (
    Action,
    ActionExecuted,
    Actor,
    CopilotFeedback,
    OperatorDeferral,
    UIStateChanged,
    Verdict,
    action_id_for,
    new_id,
)
from selective_autonomy.simulator.errors import SimulatorError
from selective_autonomy.simulator.operator_model import HandlingTimeModel, OperatorModel, same_action
from selective_autonomy.simulator.report import AutomationError, ReplayReport, ReplayTally
from selective_autonomy.traces.format import Case, trace_event_id

DecisionRecord = ActionExecuted | OperatorDeferral


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
    diverged: bool = False  # an action that ran differed from the recorded one
    attending: bool = False  # the operator handled the previous step
    status: SessionStatus = SessionStatus.active

    @property
    def recorded(self) -> Action:
        return self.case.steps[self.step].action


class SessionDriver:
    """Starts sessions, checks each decision once, answers deferrals, and advances sessions.

    :param clock: monotonic seconds (default ``time.monotonic``); tests pass a fake.
    """

    def __init__(
        self,
        publisher: Publisher,
        *,
        config: ReplayConfig | None = None,
        operator: OperatorModel | None = None,
        handling: HandlingTimeModel | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.publisher = publisher
        self.config = config or ReplayConfig()
        self.operator = operator or OperatorModel()
        self.handling = handling or HandlingTimeModel()
        self.clock = clock
        self.tally = ReplayTally()
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
        of actions that actually ran (see the module docstring)."""
        i = session.step
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
        correct = same_action(record.action, session.recorded)
        if not session.diverged:
            tally.executed_on_record += 1
            tally.correct_on_record += int(correct)
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
                    recorded=session.recorded,
                )
            )
        self._maybe_audit(session, record, correct)
        session.performed.append(record.action)
        session.attending = False
        self._advance(session, Actor.system)

    def _maybe_audit(self, session: SimSession, record: ActionExecuted, correct: bool) -> None:
        """Review a sample of unattended steps, as a supervising operator would, at a context-switch cost."""
        key = f"audit\x1f{self.config.run_id}\x1f{session.case.case_id}/{session.step}"
        if self.config.audit_rate <= 0.0 or random.Random(key).random() >= self.config.audit_rate:
            return
        self.tally.audits += 1
        self.tally.audits_corrected += int(not correct)
        self.tally.operator_time_s += self.handling.interruption_s
        self.publisher.feedback(
            CopilotFeedback(
                deferral_id=None,
                session_id=record.session_id,
                process_id=record.process_id,
                business_cluster=record.business_cluster,
                state_version=record.state_version,
                suggestion=record.action,
                suggestion_action_id=record.action_id,
                verdict=Verdict.accepted if correct else Verdict.corrected,
                operator_action=None if correct else session.recorded,
                operator_id=self.operator.config.operator_id,
                latency_ms=round(self.handling.interruption_s * 1000),
                policy_probability=record.policy_probability,
                critic_score=record.critic_score,
                policy_version=record.policy_version,
                critic_version=record.critic_version,
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
        self.publisher.feedback(self.operator.feedback(record, answer, latency_ms=round(cost_s * 1000)))
        session.performed.append(answer.performed)
        session.deferrals += 1
        session.attending = True
        self._advance(session, Actor.operator)

    def _advance(self, session: SimSession, actor: Actor) -> None:
        session.diverged = session.diverged or not same_action(session.performed[-1], session.recorded)
        session.step += 1
        if session.step == len(session.case.steps):
            session.status = SessionStatus.completed
            self._active.discard(session.session_id)
            self.tally.sessions_completed += 1
            self.tally.sessions_unattended += int(session.deferrals == 0)
            self.tally.sessions_unattended_correct += int(session.deferrals == 0 and session.errors == 0)
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
