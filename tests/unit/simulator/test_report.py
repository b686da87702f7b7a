"""Report arithmetic: rates, time saved and throughput from raw counts (no network)."""

from __future__ import annotations

from collections import Counter

import pytest

from selective_autonomy.simulator.report import MAX_EXAMPLES, AutomationError, ReplayTally
from tests.support.simulator import act


def test_rates_and_times() -> None:
    tally = ReplayTally(
        sessions=10,
        sessions_completed=9,
        sessions_unattended=3,
        steps=50,
        steps_executed=30,
        steps_deferred=15,
        executed_correct=27,
        automation_error_count=3,
        deferrals_by_reason=Counter({"below_threshold": 10, "approval_required": 5}),
        feedback_by_verdict=Counter({"accepted": 9, "corrected": 6}),
        operator_time_s=1800.0,
        baseline_time_s=7200.0,
        audits=4,
        audit_time_s=120.0,
        stalled=["s9"],
        duplicates=4,
        ignored=Counter({"foreign_session": 2}),
    )
    report = tally.report(wall_time_s=5.0)
    assert report.automation_rate == pytest.approx(0.3)
    assert report.steps_decided == 45
    assert report.coverage == pytest.approx(30 / 45)
    assert report.precision == pytest.approx(0.9)
    assert report.audits == 4 and report.audit_time_s == 120.0  # QA time: not in the handling time
    assert report.automation_errors == 3
    assert report.feedback == 15 and report.feedback_by_verdict == {"accepted": 9, "corrected": 6}
    assert report.deferrals_by_reason == {"approval_required": 5, "below_threshold": 10}
    assert report.handling_time_reduction == pytest.approx(0.75)
    assert report.deferrals_per_operator_hour == pytest.approx(30.0)  # 15 deferrals in half an hour
    assert report.stalled_sessions == 1 and report.stalled_session_ids == ["s9"]
    assert report.duplicates_ignored == 4 and report.ignored_records == {"foreign_session": 2}
    assert report.sessions_per_s == pytest.approx(9 / 5) and report.steps_per_s == pytest.approx(9.0)
    assert "coverage=66.7%" in report.summary() and "precision=90.0%" in report.summary()


def test_empty_denominators_give_none() -> None:
    report = ReplayTally().report(wall_time_s=0.0)
    assert report.automation_rate is None and report.coverage is None and report.precision is None
    assert report.handling_time_reduction is None and report.deferrals_per_operator_hour is None
    assert report.sessions_per_s is None and report.steps_per_s is None
    assert "n/a" in report.summary()


def test_copilot_costs_more_than_manual_when_every_step_interrupts() -> None:
    report = ReplayTally(sessions=1, steps=2, steps_deferred=2, operator_time_s=150.0, baseline_time_s=90.0).report(1.0)
    assert report.handling_time_reduction == pytest.approx(1 - 150 / 90)
    assert report.coverage == 0.0


def test_error_examples_are_bounded() -> None:
    tally = ReplayTally()
    for i in range(MAX_EXAMPLES + 5):
        tally.on_automation_error(
            AutomationError(session_id="s", case_id="c", step=i, executed=act("a"), recorded=act("b"))
        )
    report = tally.report(1.0)
    assert report.automation_errors == MAX_EXAMPLES + 5 and len(report.automation_error_examples) == MAX_EXAMPLES
