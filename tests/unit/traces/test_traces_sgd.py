"""SGD import on a slice (dev, first file, first 30 dialogues): schemas, actions, states, clock."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from selective_autonomy.schemas.event_parts import ActionTier, Speaker
from selective_autonomy.schemas.process import ProcessSchema, ValueType
from selective_autonomy.traces.format import Case
from selective_autonomy.traces.sgd import (
    ACTIVE_INTENT_FIELD,
    dialogue_start,
    iter_sgd_cases,
    load_sgd_schemas,
    read_sgd_dialogues,
    sgd_dialogue_files,
)
from selective_autonomy.traces.synthetic import SYNTHETIC_EPOCH, TURN_SECONDS
from selective_autonomy.traces.validate import case_violations

DIALOGUES = 30


@pytest.fixture(scope="module")
def schemas(sgd_path: Path) -> dict[str, ProcessSchema]:
    return load_sgd_schemas(sgd_path / "dev" / "schema.json.gz")


@pytest.fixture(scope="module")
def first_file(sgd_path: Path) -> Path:
    return sgd_dialogue_files(sgd_path / "dev")[0]


@pytest.fixture(scope="module")
def cases(first_file: Path) -> list[Case]:
    return list(iter_sgd_cases([first_file], limit_dialogues=DIALOGUES))


def test_schemas_load(schemas: dict[str, ProcessSchema]) -> None:
    assert len(schemas) == 17
    restaurants = schemas["Restaurants_2"]
    assert restaurants.process_id == "sgd.Restaurants_2"
    reserve, find = restaurants.action("ReserveRestaurant"), restaurants.action("FindRestaurants")
    assert reserve is not None and reserve.tier is ActionTier.approval_required
    assert find is not None and find.tier is ActionTier.critical
    assert {a.name for a in reserve.arguments if a.required} == {"restaurant_name", "location", "time"}
    price = restaurants.field("price_range")
    assert price is not None and price.type is ValueType.enum and "dontcare" in (price.enum or [])
    for act in (
        "REQUEST",
        "INFORM",
        "OFFER",
        "CONFIRM",
        "NOTIFY_SUCCESS",
        "NOTIFY_FAILURE",
        "REQ_MORE",
        "OFFER_INTENT",
        "INFORM_COUNT",
        "close_chat",
    ):
        assert restaurants.action(act) is not None, act
    assert restaurants.action("INFORM").tier is ActionTier.auto  # type: ignore[union-attr]


def test_cases_fit_their_schemas(cases: list[Case], schemas: dict[str, ProcessSchema]) -> None:
    steps = sum(len(c.steps) for c in cases)
    actions = {s.action.action_type for c in cases for s in c.steps}
    print(f"sgd slice: cases={len(cases)} steps={steps} distinct actions={len(actions)}")
    assert len({c.attributes["dialogue_id"] for c in cases}) == DIALOGUES
    assert len(cases) >= DIALOGUES and steps > 10 * DIALOGUES
    for case in cases:
        schema = schemas[str(case.attributes["service"])]
        assert case.process_id == schema.process_id
        assert all(step.action.action_type in schema.action_names for step in case.steps)
        assert case_violations(schema, [case]) == []


def test_every_dialogue_ends_with_close_chat(cases: list[Case]) -> None:
    by_dialogue: dict[object, list[Case]] = {}
    for case in cases:
        by_dialogue.setdefault(case.attributes["dialogue_id"], []).append(case)
    for group in by_dialogue.values():
        assert any(c.steps[-1].action.action_type == "close_chat" for c in group)


def test_service_call_precedes_the_acts_reporting_it(first_file: Path, cases: list[Case]) -> None:
    dialogue = read_sgd_dialogues(first_file)[0]  # 1_00000: a restaurant booking
    case = next(c for c in cases if c.attributes["dialogue_id"] == dialogue.dialogue_id)
    types = [s.action.action_type for s in case.steps]
    call = types.index("ReserveRestaurant")
    assert types[call + 1 :].index("NOTIFY_SUCCESS") >= 0
    assert case.steps[call].timestamp < case.steps[call + 1].timestamp


def test_states_hold_only_what_came_before(first_file: Path, cases: list[Case]) -> None:
    dialogue = read_sgd_dialogues(first_file)[0]
    case = next(c for c in cases if c.attributes["dialogue_id"] == dialogue.dialogue_id)
    first = case.steps[0].state
    assert [t.speaker for t in first.chat_tail] == [Speaker.customer]
    assert first.chat_tail[0].text == dialogue.turns[0].utterance
    assert first.fields[ACTIVE_INTENT_FIELD] == "ReserveRestaurant"
    assert first.fields["number_of_seats"] == "2" and "restaurant_name" not in first.fields
    for i, step in enumerate(case.steps):
        assert step.state.recent_actions == [s.action for s in case.steps[:i]][-20:]
        assert all(turn.at is not None and turn.at <= step.timestamp for turn in step.state.chat_tail)
        assert not step.state.chat_tail or step.state.chat_tail[-1].speaker is Speaker.customer


def test_synthetic_clock(cases: list[Case]) -> None:
    assert dialogue_start("1_00000") == SYNTHETIC_EPOCH + timedelta(minutes=10_000)
    case = cases[0]
    assert case.started_at == dialogue_start(str(case.attributes["dialogue_id"]))
    assert case.steps[0].timestamp == case.started_at + timedelta(seconds=TURN_SECONDS)  # turn 1: first system turn
    assert [c.started_at for c in cases] == sorted(c.started_at for c in cases)
    assert all(c.case_id.startswith("dev/") for c in cases)


def test_import_is_deterministic(first_file: Path, cases: list[Case]) -> None:
    again = list(iter_sgd_cases([first_file], limit_dialogues=3))
    assert again == cases[: len(again)]
