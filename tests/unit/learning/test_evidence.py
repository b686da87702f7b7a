"""Evidence builders on hand-made rows (no database): labels, sources, skip rules and policy signals."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from selective_autonomy.learning.evidence import (
    EvidenceSource,
    critic_examples,
    label_of,
    monitor_outcomes,
    policy_examples,
    verdict_counts,
)
from selective_autonomy.schemas.event_parts import ActionTier, Stage, Verdict
from selective_autonomy.store import FeedbackWithContext
from selective_autonomy.store.models import JudgedStep
from tests.support.store import ESCALATE, LOOKUP, REFUND, T0, answer, proposal_for, state


def row(verdict: Verdict, *, with_context: bool = True, **changes: Any) -> FeedbackWithContext:
    proposal = proposal_for(state(), **changes)
    return FeedbackWithContext(
        feedback=answer(proposal, verdict),
        received_at=T0 + timedelta(minutes=2),
        context=proposal if with_context else None,
    )


@pytest.mark.parametrize(
    ("verdict", "label"),
    [(Verdict.accepted, True), (Verdict.acceptable_alternative, True), (Verdict.corrected, False)],
)
def test_label_of_each_verdict(verdict: Verdict, label: bool) -> None:
    assert label_of(verdict) is label
    [example] = critic_examples([row(verdict)])
    assert example.label is label and example.verdict is verdict


def test_acceptable_alternative_is_positive_but_stays_distinct() -> None:
    examples = critic_examples([row(Verdict.accepted), row(Verdict.acceptable_alternative), row(Verdict.corrected)])
    assert [e.label for e in examples] == [True, True, False]
    assert verdict_counts(examples) == {Verdict.accepted: 1, Verdict.acceptable_alternative: 1, Verdict.corrected: 1}
    alternative = examples[1]
    assert alternative.action == LOOKUP and alternative.operator_action == REFUND


def test_critic_example_carries_state_signals_and_critic_input() -> None:
    [example] = critic_examples([row(Verdict.corrected)])
    assert example.event == state()
    assert (example.tier, example.step_index, example.business_cluster) == (ActionTier.auto, 3, "eu")
    assert [c.action for c in example.candidates] == [LOOKUP, REFUND, ESCALATE]
    assert example.signals.rank == 0
    assert example.signals.margin == pytest.approx(0.5)
    scored = example.critic_input()
    assert (scored.event, scored.action, scored.signals) == (example.event, example.action, example.signals)


def test_rows_without_state_or_suggestion_give_no_critic_example() -> None:
    no_context = row(Verdict.corrected, with_context=False)
    no_suggestion = row(Verdict.corrected, suggestion=None)
    no_suggestion = no_suggestion.model_copy(
        update={"feedback": no_suggestion.feedback.model_copy(update={"suggestion": None})}
    )
    assert critic_examples([no_context, no_suggestion]) == []
    assert len(policy_examples([no_context, no_suggestion])) == 1  # the correction still teaches the policy


def test_policy_examples_take_the_action_that_should_have_run() -> None:
    examples = policy_examples([row(Verdict.accepted), row(Verdict.acceptable_alternative), row(Verdict.corrected)])
    assert [(e.verdict, e.action) for e in examples] == [
        (Verdict.accepted, LOOKUP),
        (Verdict.acceptable_alternative, REFUND),
        (Verdict.corrected, REFUND),
    ]
    assert all(e.event == state() and e.step_index == 3 for e in examples)


def test_the_stage_a_step_was_handled_in_says_what_its_label_may_be_used_for() -> None:
    """Copilot (and exploration-holdout) answers are unbiased evidence; selective deferrals are not."""
    selective = row(Verdict.corrected)
    copilot = row(Verdict.accepted)
    copilot = copilot.model_copy(update={"context": copilot.context.model_copy(update={"stage": Stage.copilot})})  # type: ignore[union-attr]
    sources = [e.source for e in critic_examples([selective, copilot])]
    assert sources == [EvidenceSource.deferred, EvidenceSource.exploration]
    assert [e.source for e in policy_examples([selective, copilot])] == sources


def test_audits_are_monitor_outcomes_with_their_sampling_probability() -> None:
    steps = [
        JudgedStep(
            feedback_id="a",
            process_id="p",
            business_cluster="c",
            verdict=Verdict.corrected,
            audit=True,
            inclusion_probability=0.04,
            given_at=T0,
            received_at=T0,
        ),
        JudgedStep(
            feedback_id="b",
            process_id="p",
            business_cluster="c",
            verdict=Verdict.acceptable_alternative,
            audit=False,
            inclusion_probability=None,
            given_at=T0,
            received_at=T0,
        ),
    ]
    outcomes = monitor_outcomes(steps)
    assert [(o.accepted, o.inclusion_probability, o.audit) for o in outcomes] == [
        (False, 0.04, True),
        (True, 1.0, False),
    ]
