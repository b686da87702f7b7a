"""Hand-made cases and an in-memory decide agent for the simulator's and the demo's tests."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from selective_autonomy.agents.decisions import deferral_id_for
from selective_autonomy.schemas.event_parts import Action, ActionTier, DeferralReason, Stage, UIState
from selective_autonomy.schemas.events import (
    ActionExecuted,
    CopilotFeedback,
    OperatorDeferral,
    UIStateChanged,
    action_id_for,
)
from selective_autonomy.traces.format import Case, TraceStep

T0 = datetime(2024, 5, 6, 9, 0, tzinfo=UTC)


def act(action_type: str, **arguments: str | int | float | bool | None) -> Action:
    return Action(action_type=action_type, arguments=arguments)


def make_case(case_id: str, actions: Sequence[Action], gaps_s: Sequence[float], fields: bool = True) -> Case:
    """A case whose step ``i`` happens ``gaps_s[i]`` seconds after the previous one (the start for i=0)."""
    assert len(actions) == len(gaps_s)
    steps = []
    at = T0
    for i, (action, gap) in enumerate(zip(actions, gaps_s, strict=True)):
        at = at + timedelta(seconds=gap)
        state = UIState(fields={"step": i} if fields else {}, recent_actions=list(actions[:i]), case_started_at=T0)
        steps.append(TraceStep(state=state, action=action, operator_id="op", timestamp=at))
    return Case(case_id=case_id, process_id="billing", business_cluster="retail", started_at=T0, steps=steps)


@dataclass
class Recorder:
    """A Publisher that keeps what the driver publishes."""

    states: list[UIStateChanged] = field(default_factory=list)
    feedback_sent: list[CopilotFeedback] = field(default_factory=list)

    def state(self, event: UIStateChanged) -> None:
        self.states.append(event)

    def feedback(self, event: CopilotFeedback) -> None:
        self.feedback_sent.append(event)


def executed(state: UIStateChanged, action: Action) -> ActionExecuted:
    return ActionExecuted(
        action_id=action_id_for(state.session_id, state.state_version, action),
        event_id=state.event_id,
        session_id=state.session_id,
        process_id=state.process_id,
        business_cluster=state.business_cluster,
        state_version=state.state_version,
        action=action,
        tier=ActionTier.critical,
        policy_probability=0.9,
        critic_score=0.9,
    )


def deferred(
    state: UIStateChanged, suggestion: Action | None, reason: DeferralReason = DeferralReason.copilot_stage
) -> OperatorDeferral:
    return OperatorDeferral(
        stage=Stage.selective,
        deferral_id=deferral_id_for(state.session_id, state.state_version),
        event_id=state.event_id,
        session_id=state.session_id,
        process_id=state.process_id,
        business_cluster=state.business_cluster,
        state_version=state.state_version,
        ui_state=state.ui_state,
        suggestion=suggestion,
        suggestion_action_id=action_id_for(state.session_id, state.state_version, suggestion) if suggestion else None,
        tier=ActionTier.critical,
        policy_probability=0.4,
        critic_score=0.3,
        threshold=0.5,
        reason=reason,
        policy_version="p1",
        critic_version="c1",
    )


Decider = Callable[[UIStateChanged], ActionExecuted | OperatorDeferral | None]


def pump(driver: object, recorder: Recorder, decide: Decider, max_rounds: int = 1000) -> None:
    """Answer every published state with ``decide`` until nothing new is published."""
    from selective_autonomy.simulator.sessions import SessionDriver

    assert isinstance(driver, SessionDriver)
    for answered in range(max_rounds):
        if answered == len(recorder.states):
            return
        record = decide(recorder.states[answered])
        if record is not None:
            driver.handle(record)
    raise AssertionError("the driver kept publishing")
