"""Recorded sessions (the store's trace table) as training cases."""

from __future__ import annotations

from datetime import timedelta
from itertools import pairwise

from selective_autonomy.learning.recorded import case_from_recorded, cases_from_recorded, trace_examples
from selective_autonomy.schemas.event_parts import Action, Actor, UIState
from selective_autonomy.schemas.events import UIStateChanged
from selective_autonomy.traces.format import Case
from tests.factories import CLOSE, INVOICE, T0, operator_session, recorded
from tests.factories import ORDER_LOOKUP as LOOKUP


def test_each_operator_state_pairs_the_state_before_it_with_its_action() -> None:
    states = operator_session("s1", T0, plan="pro")
    case = case_from_recorded(recorded(states))
    assert case is not None
    assert (case.case_id, case.process_id, case.business_cluster, case.started_at) == ("s1", "billing", "retail", T0)
    assert [step.action for step in case.steps] == [LOOKUP, INVOICE, CLOSE]
    assert [step.state for step in case.steps] == [s.ui_state for s in states[:-1]]
    assert [step.timestamp for step in case.steps] == [s.timestamp for s in states[1:]]
    assert case.ended
    # Replayed, the case gives the states the live system saw before each step.
    assert [case.state_event(i).ui_state for i in range(3)] == [s.ui_state for s in states[:-1]]
    examples = trace_examples([case])
    assert [(e.event.ui_state, e.action) for e in examples] == [
        (a.ui_state, b.last_action) for a, b in pairwise(states)
    ]


def case_actions(case: Case) -> list[Action]:
    return [step.action for step in case.steps]


def test_other_actors_states_are_context_not_steps_and_version_gaps_are_fine() -> None:
    opened, looked_up, *_ = operator_session("s1", T0, plan="pro")
    customer = UIStateChanged(
        session_id="s1",
        process_id="billing",
        business_cluster="retail",
        state_version=5,  # the platform's revision counter skipped numbers
        timestamp=T0 + timedelta(minutes=2),
        actor=Actor.customer,
        ui_state=UIState(fields={"plan": "basic"}, recent_actions=[LOOKUP]),
    )
    executed = customer.model_copy(
        update={
            "state_version": 6,
            "actor": Actor.system,
            "last_action": INVOICE,
            "timestamp": T0 + timedelta(minutes=3),
        }
    )
    closed = customer.model_copy(
        update={
            "state_version": 9,
            "actor": Actor.operator,
            "last_action": CLOSE,
            "timestamp": T0 + timedelta(minutes=1),
        }
    )
    case = case_from_recorded(recorded([opened, looked_up, customer, executed, closed]))
    assert case is not None
    # The system's own step is no example; the operator closed from the state just before theirs.
    assert case_actions(case) == [LOOKUP, CLOSE]
    assert case.steps[1].state == executed.ui_state
    # Its time ran backwards (another platform node's clock): held at the screen's it acted on.
    assert case.steps[1].timestamp == executed.timestamp


def test_sessions_without_a_usable_step_are_left_out_and_idle_ones_have_no_ending() -> None:
    opened = operator_session("s1", T0)[0]
    lone = operator_session("s2", T0)[1]  # an operator state whose screen before it was never recorded
    idle = operator_session("s3", T0, closed=False)
    assert case_from_recorded(recorded([opened])) is None
    assert case_from_recorded(recorded([lone])) is None
    cases = cases_from_recorded([recorded([opened]), recorded(idle, closed=False), recorded([lone])])
    assert [(c.case_id, c.ended, len(c.steps)) for c in cases] == [("s3", False, 2)]
