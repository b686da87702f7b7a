"""The stage machine: promotion on a certificate, demotion on the monitor's alarm or a lapsed certificate."""

from __future__ import annotations

import pytest

from selective_autonomy.config import StageRules
from selective_autonomy.learning.monitor import MonitorReading
from selective_autonomy.learning.stages import StageEvidence, next_stage
from selective_autonomy.schemas.event_parts import Stage

RULES = StageRules(target_precision=0.9, min_certified_coverage=0.05)
QUIET = MonitorReading(outcomes=100, accepted=95, wealth=0.01, alarm=False, estimate=0.95)
ALARM = MonitorReading(outcomes=40, accepted=30, wealth=12.0, alarm=True, alarm_at=39, estimate=0.75)
HEALTHY = StageEvidence(
    policy_in_service=True, certification_ran=True, certified=True, certified_coverage=0.4, monitor=QUIET
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


def test_selective_stays_while_the_monitor_is_quiet_and_the_certificate_holds() -> None:
    assert next_stage(Stage.selective, HEALTHY, RULES) is None
    # A run without enough evidence to recertify changes nothing either.
    assert next_stage(Stage.selective, HEALTHY.model_copy(update={"certification_ran": False}), RULES) is None


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"monitor": ALARM}, "precision monitor: 10 of 40"),
        ({"certified": False}, "certified nothing"),
    ],
)
def test_selective_demotes_to_copilot(change: dict, reason: str) -> None:
    decision = next_stage(Stage.selective, HEALTHY.model_copy(update=change), RULES)
    assert decision is not None and decision.stage is Stage.copilot
    assert reason in decision.reason
