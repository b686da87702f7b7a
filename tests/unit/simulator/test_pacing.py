"""Pacing a replay by the cases' own start times."""

from __future__ import annotations

from datetime import timedelta

from selective_autonomy.simulator.replay import pacing
from tests.support.simulator import act, make_case


def test_sessions_start_at_their_log_time_compressed() -> None:
    first = make_case("a", [act("x")], [0])
    later = first.model_copy(update={"case_id": "b", "started_at": first.started_at + timedelta(days=3)})
    due = pacing([later, first], day_s=0.5, started=100.0)
    assert due(first) == 100.0  # counted from the earliest case, whatever the order given
    assert due(later) == 101.5


def test_without_pacing_every_session_is_due_at_once() -> None:
    case = make_case("a", [act("x")], [0])
    assert pacing([case], day_s=None, started=7.0)(case) == 7.0
    assert pacing([], day_s=1.0, started=7.0)(case) == 7.0
