"""The simulated operator: verdicts, noise, feedback records, and the handling-time model."""

from __future__ import annotations

import pytest

from selective_autonomy.schemas.event_parts import UIState, Verdict
from selective_autonomy.schemas.events import UIStateChanged
from selective_autonomy.simulator.operator_model import (
    HandlingTimeModel,
    InterruptionPolicy,
    OperatorConfig,
    OperatorModel,
    alternatives_from_mapping,
    same_action,
)
from tests.support.simulator import act, deferred, make_case

REFUND = act("refund", amount=10.0, currency="EUR")


def test_same_action_is_canonical() -> None:
    assert same_action(act("refund", amount=10.0, currency="EUR"), act("refund", currency="EUR", amount=10.0))
    assert not same_action(REFUND, act("refund", amount=11.0, currency="EUR"))
    assert not same_action(REFUND, None) and same_action(None, None)


def test_accept_correct_and_alternative() -> None:
    operator = OperatorModel(OperatorConfig(alternatives=alternatives_from_mapping({"refund": ["voucher"]})))
    accepted = operator.answer(act("refund", currency="EUR", amount=10.0), REFUND)
    assert accepted.verdict is Verdict.accepted and accepted.operator_action is None and accepted.performed == REFUND
    corrected = operator.answer(act("close_chat"), REFUND)
    assert corrected.verdict is Verdict.corrected and corrected.operator_action == REFUND == corrected.performed
    alternative = operator.answer(act("voucher", amount=10.0), REFUND)
    assert alternative.verdict is Verdict.acceptable_alternative
    assert alternative.operator_action == REFUND == alternative.performed
    # The equivalence is directed: recorded voucher, suggested refund is a correction.
    assert operator.answer(REFUND, act("voucher")).verdict is Verdict.corrected
    nothing = operator.answer(None, REFUND)
    assert nothing.verdict is Verdict.corrected and nothing.performed == REFUND
    assert not any(a.noisy for a in (accepted, corrected, alternative, nothing))


@pytest.mark.parametrize(("wrong_accept", "needless"), [(0.1, 0.0), (0.0, 0.2), (0.05, 0.05)])
def test_noise_rates_with_a_fixed_seed(wrong_accept: float, needless: float) -> None:
    operator = OperatorModel(OperatorConfig(wrong_accept_rate=wrong_accept, needless_correction_rate=needless, seed=7))
    n = 4000
    wrong = [operator.answer(act("close_chat"), REFUND, key=f"case/{i}") for i in range(n)]
    right = [operator.answer(REFUND, REFUND, key=f"case/{i}") for i in range(n)]
    wrong_accepts = sum(a.verdict is Verdict.accepted for a in wrong)
    needless_corrections = sum(a.verdict is Verdict.corrected for a in right)
    assert abs(wrong_accepts / n - wrong_accept) < 0.015
    assert abs(needless_corrections / n - needless) < 0.015
    assert sum(a.noisy for a in wrong) == wrong_accepts and sum(a.noisy for a in right) == needless_corrections
    # A wrong accept runs the (wrong) suggestion; a needless correction runs the recorded action.
    assert all(a.performed == act("close_chat") for a in wrong if a.verdict is Verdict.accepted)
    assert all(a.performed == REFUND for a in right)
    # Deterministic per (seed, key), whatever the order of calls.
    again = OperatorModel(OperatorConfig(wrong_accept_rate=wrong_accept, needless_correction_rate=needless, seed=7))
    assert [again.answer(act("close_chat"), REFUND, key=f"case/{i}") for i in reversed(range(n))][::-1] == wrong
    other_seed = OperatorModel(OperatorConfig(wrong_accept_rate=wrong_accept, needless_correction_rate=needless))
    assert [other_seed.answer(REFUND, REFUND, key=f"case/{i}") for i in range(n)] + [
        other_seed.answer(act("close_chat"), REFUND, key=f"case/{i}") for i in range(n)
    ] != right + wrong


def test_feedback_carries_the_deferral_ids_scores_and_versions() -> None:
    state = UIStateChanged(
        session_id="s1", process_id="billing", business_cluster="retail", state_version=3, ui_state=UIState()
    )
    deferral = deferred(state, act("close_chat"))
    operator = OperatorModel(OperatorConfig(operator_id="op-7"))
    feedback = operator.feedback(deferral, operator.answer(deferral.suggestion, REFUND), latency_ms=1234)
    assert feedback.verdict is Verdict.corrected and feedback.operator_action == REFUND
    assert feedback.executed_action == REFUND
    assert (feedback.deferral_id, feedback.session_id, feedback.state_version) == (deferral.deferral_id, "s1", 3)
    assert feedback.suggestion == act("close_chat") and feedback.suggestion_action_id == deferral.suggestion_action_id
    assert (feedback.policy_probability, feedback.critic_score) == (0.4, 0.3)
    assert (feedback.policy_version, feedback.critic_version) == ("p1", "c1")
    assert feedback.operator_id == "op-7" and feedback.latency_ms == 1234
    accepted = operator.feedback(deferral, operator.answer(deferral.suggestion, act("close_chat")), latency_ms=5)
    assert accepted.verdict is Verdict.accepted and accepted.operator_action is None


def test_handling_time_from_hand_made_cases() -> None:
    a, b, c = act("lookup"), act("reply"), act("close_chat")
    cases = [
        make_case("c1", [a, b, c], [0, 40, 10]),
        make_case("c2", [a, b, b, c], [5, 60, 100_000, 0]),  # a gap of a day is capped
        make_case("c3", [b, a], [0, 20]),
    ]
    model = HandlingTimeModel.from_cases(cases, cap_s=600, interruption_s=30)
    # Gaps by type of the later step (first steps are not observed): reply 40, 60, 600; close 10, 0; lookup 20.
    assert model.step_seconds == {"reply": 60.0, "close_chat": 5.0, "lookup": 20.0}
    assert model.default_step_s == 30.0  # median of 40, 60, 600, 10, 0, 20
    assert model.step_s("never-seen") == 30.0
    assert model.manual_case_s(cases[0]) == 20 + 60 + 5
    assert model.deferred_step_s("reply") == 90.0
    assert model.deferred_step_s("reply", attending=True) == 90.0  # every deferral interrupts by default
    handover = model.model_copy(update={"interruption": InterruptionPolicy.handover})
    assert handover.deferred_step_s("reply", attending=True) == 60.0
    assert handover.deferred_step_s("reply", attending=False) == 90.0


def test_handling_time_without_observations_falls_back() -> None:
    model = HandlingTimeModel.from_cases([make_case("one", [act("x")], [3])], fallback_step_s=45)
    assert model.step_seconds == {} and model.default_step_s == 45
