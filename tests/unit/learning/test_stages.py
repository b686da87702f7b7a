"""The stage machine: promotion on evidence, demotion on realised precision, lapsed certification or drift."""

from __future__ import annotations

import pytest

from selective_autonomy.agents.stages import StageEvidence, StageRules, next_stage
from selective_autonomy.schemas.events import Stage

RULES = StageRules(
    target_precision=0.9, min_certified_coverage=0.05, min_audits=30, drift_tolerance=0.15, min_drift_samples=50
)
HEALTHY = StageEvidence(
    policy_in_service=True,
    certified=True,
    certified_coverage=0.4,
    audited=100,
    rolling_precision=0.95,
    reference_acceptance=0.8,
    recent_acceptance=0.78,
    recent_samples=200,
)


def test_logging_moves_to_copilot_once_a_policy_serves() -> None:
    assert next_stage(Stage.logging, StageEvidence(policy_in_service=False), RULES) is None
    decision = next_stage(Stage.logging, StageEvidence(policy_in_service=True), RULES)
    assert decision is not None and decision.stage is Stage.copilot


@pytest.mark.parametrize(
    ("certified", "coverage", "promoted"), [(False, 0.9, False), (True, 0.01, False), (True, 0.05, True)]
)
def test_copilot_promotes_only_with_nontrivial_certified_coverage(
    certified: bool, coverage: float, promoted: bool
) -> None:
    evidence = StageEvidence(policy_in_service=True, certified=certified, certified_coverage=coverage)
    decision = next_stage(Stage.copilot, evidence, RULES)
    assert (decision is not None and decision.stage is Stage.selective) is promoted


def test_selective_stays_while_healthy() -> None:
    assert next_stage(Stage.selective, HEALTHY, RULES) is None


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"rolling_precision": 0.85}, "realised precision"),
        ({"certified": False}, "could not certify"),
        ({"recent_acceptance": 0.6}, "drift"),
    ],
)
def test_selective_demotes_to_copilot(change: dict, reason: str) -> None:
    decision = next_stage(Stage.selective, HEALTHY.model_copy(update=change), RULES)
    assert decision is not None and decision.stage is Stage.copilot
    assert reason in decision.reason


def test_too_few_audits_or_drift_samples_do_not_demote() -> None:
    assert (
        next_stage(Stage.selective, HEALTHY.model_copy(update={"rolling_precision": 0.5, "audited": 10}), RULES) is None
    )
    assert (
        next_stage(Stage.selective, HEALTHY.model_copy(update={"recent_acceptance": 0.1, "recent_samples": 10}), RULES)
        is None
    )
