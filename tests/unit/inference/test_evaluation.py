"""Evaluation counts on hand-made proposals, the selective curve, the router, and the plot."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from selective_autonomy.inference.datasets import Examples, case_examples
from selective_autonomy.inference.evaluation import (
    EvaluationReport,
    ProcessRouter,
    evaluate_policy,
    median_ms,
    plot_report,
    score,
    selective_curve,
    summarise,
)
from selective_autonomy.inference.protocol import Candidate, ModelUnavailable, Proposal
from selective_autonomy.schemas.event_parts import Action
from selective_autonomy.schemas.events import UIStateChanged

from .support import synthetic_cases

A = Action(action_type="a")
B = Action(action_type="b")
B1 = Action(action_type="b", arguments={"x": 1})


class Oracle:
    """Always right: proposes each event's recorded action (looked up by event id) with probability 0.9."""

    version = "oracle"

    def __init__(self, examples: Examples) -> None:
        self.answers = {e.event_id: a for e, a in zip(examples.events, examples.targets, strict=True)}

    def propose(self, events: Sequence[UIStateChanged], top_k: int = 5) -> list[Proposal]:
        return [
            Proposal(candidates=[Candidate(action=self.answers[e.event_id], probability=0.9)], policy_version="oracle")
            for e in events
        ]


def proposal(*pairs: tuple[Action, float]) -> Proposal:
    return Proposal(candidates=[Candidate(action=a, probability=p) for a, p in pairs], policy_version="test")


def test_an_always_right_policy_is_perfect_at_every_coverage() -> None:
    examples = case_examples(synthetic_cases(10))
    report = evaluate_policy("oracle", Oracle(examples), examples)
    assert report.n == len(examples) == 40
    assert report.top1 == report.top3 == report.type_top1 == 1.0
    assert all(point.precision == 1.0 for point in report.selective_curve)
    assert set(report.precision_at_coverage.values()) == {1.0}
    assert report.selective_area == 1.0
    assert report.selective_curve[-1].coverage == 1.0


def test_counts_on_a_hand_made_example() -> None:
    outcomes = [
        score(proposal((A, 0.9), (B, 0.1)), A),  # right, confident
        score(proposal((B, 0.8), (A, 0.2)), A),  # wrong at 1, right at 3
        score(proposal((B, 0.6)), B1),  # right type, wrong arguments
        score(proposal(), B),  # nothing proposed
    ]
    report = summarise("hand", "v", outcomes)
    assert (report.top1, report.top3, report.type_top1, report.type_top3) == (0.25, 0.5, 0.5, 0.75)
    assert report.no_candidate == 1
    assert report.per_action_type["a"].n == 2
    assert report.per_action_type["a"].top1 == 0.5
    assert report.per_action_type["a"].top3 == 1.0
    assert report.per_action_type["b"].type_top1 == 0.5
    curve = [(p.threshold, p.coverage, p.precision) for p in report.selective_curve]
    assert curve == [(0.9, 0.25, 1.0), (0.8, 0.5, 0.5), (0.6, 0.75, 1 / 3), (0.0, 1.0, 0.25)]
    assert report.precision_at_coverage["0.25"] == 1.0
    assert report.precision_at_coverage["1"] == 0.25
    assert report.selective_area == pytest.approx((1 + 0.5 + 1 / 3 + 0.25) / 4)


def test_ties_are_taken_together_and_long_curves_are_thinned() -> None:
    tied = [score(proposal((A, 0.5)), A), score(proposal((A, 0.5)), B)]
    assert [(p.coverage, p.precision) for p in selective_curve(tied)] == [(1.0, 0.5)]
    many = [score(proposal((A, i / 1000)), A) for i in range(1, 1000)]
    curve = selective_curve(many, max_points=11)
    assert len(curve) == 11
    assert curve[0].coverage < curve[-1].coverage == 1.0


def test_router_keeps_event_order_and_refuses_unknown_processes() -> None:
    examples = case_examples(synthetic_cases(3))
    router = ProcessRouter({"synthetic": Oracle(examples)})
    proposals = router.propose(examples.events)
    assert [p.candidates[0].action for p in proposals] == examples.targets
    other = examples.events[0].model_copy(update={"process_id": "other"})
    with pytest.raises(ModelUnavailable):
        router.propose([other])


def test_report_serialises_and_plots(tmp_path: Path) -> None:
    examples = case_examples(synthetic_cases(5))
    policy_report = evaluate_policy("oracle", Oracle(examples), examples)
    report = EvaluationReport(
        log="synthetic",
        source="test",
        fractions=(0.6, 0.2, 0.2),
        processes=1,
        train_cases=0,
        test_cases=5,
        test_examples=len(examples),
        policies=[policy_report, policy_report.model_copy(update={"name": "copy"})],
    )
    assert EvaluationReport.model_validate(json.loads(report.model_dump_json())) == report
    plot_report(report, tmp_path / "plot.png")
    assert (tmp_path / "plot.png").read_bytes()[:4] == b"\x89PNG"
    assert median_ms(lambda: None, repeats=3) >= 0.0
