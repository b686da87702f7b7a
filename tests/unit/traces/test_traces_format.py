"""The native trace format: JSONL round trip, line-numbered errors, replayed state events."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from selective_autonomy.schemas.event_parts import Action, Actor, ChatTurn, Speaker, UIState
from selective_autonomy.schemas.events import action_id_for
from selective_autonomy.traces.errors import TraceFormatError
from selective_autonomy.traces.format import Case, TraceStep, read_cases, write_cases

T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)


def make_case(case_id: str = "c1", start: datetime = T0, n: int = 3) -> Case:
    steps = []
    previous: list[Action] = []
    for i in range(n):
        action = Action(action_type=f"a{i}", arguments={"k": i} if i else {})
        state = UIState(
            fields={"amount": 10 * i, "name": None},
            chat_tail=[ChatTurn(speaker=Speaker.customer, text="hi", at=start)],
            recent_actions=list(previous),
            case_started_at=start,
        )
        steps.append(TraceStep(state=state, action=action, operator_id="op1", timestamp=start + timedelta(minutes=i)))
        previous.append(action)
    return Case(
        case_id=case_id,
        process_id="p",
        business_cluster="default",
        started_at=start,
        attributes={"channel": "chat"},
        steps=steps,
    )


@pytest.mark.parametrize("name", ["cases.jsonl", "cases.jsonl.gz"])
def test_jsonl_round_trip(tmp_path: Path, name: str) -> None:
    cases = [make_case("c1"), make_case("c2", T0 + timedelta(hours=1), n=1)]
    path = tmp_path / name
    assert write_cases(path, cases) == 2
    assert list(read_cases(path)) == cases
    if name.endswith(".gz"):
        with gzip.open(path, "rt") as lines:
            assert len(lines.readlines()) == 2
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no partial file left behind


def test_bad_line_is_reported_with_its_number(tmp_path: Path) -> None:
    path = tmp_path / "cases.jsonl"
    write_cases(path, [make_case("c1")])
    with path.open("a") as out:
        out.write("\n")  # blank lines are skipped
        out.write('{"case_id": "c3", "process_id": "p"}\n')
    cases = read_cases(path)
    assert next(cases).case_id == "c1"
    with pytest.raises(TraceFormatError, match=r"cases\.jsonl:3: .*business_cluster"):
        next(cases)


def test_not_json_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "cases.jsonl"
    path.write_text("not json\n")
    with pytest.raises(TraceFormatError, match=r":1: "):
        list(read_cases(path))


def test_state_event_replays_the_case() -> None:
    case = make_case()
    first, second = case.state_event(0), case.state_event(1)
    assert first.actor is Actor.system and first.last_action is None and first.last_action_id is None
    assert first.timestamp == case.started_at and first.state_version == 0
    assert second.actor is Actor.operator
    assert second.timestamp == case.steps[0].timestamp
    assert second.last_action == case.steps[0].action
    assert second.last_action_id == action_id_for("c1", 0, case.steps[0].action)
    assert second.ui_state == case.steps[1].state
    assert (second.session_id, second.process_id, second.business_cluster) == ("c1", "p", "default")
    assert case.state_event(1).event_id == second.event_id != first.event_id
    assert make_case("c2").state_event(1).event_id != second.event_id
    assert [e.state_version for e in case.state_events()] == [0, 1, 2]
    with pytest.raises(IndexError):
        case.state_event(3)


def test_time_must_run_forward() -> None:
    case = make_case()
    steps = list(reversed(case.steps))
    with pytest.raises(ValidationError, match="earlier"):
        Case(case_id="c", process_id="p", business_cluster="b", started_at=T0, steps=steps)


def test_naive_timestamps_are_refused() -> None:
    with pytest.raises(ValidationError):
        TraceStep(state=UIState(), action=Action(action_type="a"), timestamp=datetime(2024, 1, 1))
