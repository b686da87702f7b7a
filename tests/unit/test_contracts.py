"""Every Avro contract round-trips through fastavro and matches its pydantic mirror."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import fastavro
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from selective_autonomy.schemas import contracts
from selective_autonomy.schemas.events import (
    EVENT_MODELS,
    Action,
    ActionExecuted,
    ActionFailed,
    ActionProposed,
    ActionTier,
    ChatTurn,
    CopilotFeedback,
    DeadLetter,
    DeferralReason,
    EventModel,
    OperatorDeferral,
    Stage,
    StageChanged,
    UIState,
    UIStateChanged,
    Verdict,
    action_id_for,
)
from tests.unit.schemas.strategies import names

NOW = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
ACTION = Action(
    action_type="refund", arguments={"amount": 12.5, "reason": "late", "count": 2, "urgent": True, "x": None}
)
UI = UIState(
    fields={"name": "Ada", "tickets": 3, "vip": False, "balance": 10.25, "note": None},
    chat_tail=[ChatTurn(speaker="customer", text="my order is late", at=NOW)],
    controls=["refund", "close_chat"],
    recent_actions=[Action(action_type="lookup", arguments={"order": "A1"})],
    case_started_at=NOW,
)


def samples() -> list[EventModel]:
    action_id = action_id_for("s1", 4, ACTION)
    return [
        UIStateChanged(
            session_id="s1",
            process_id="p",
            business_cluster="c",
            state_version=4,
            timestamp=NOW,
            actor="operator",
            ui_state=UI,
            last_action=ACTION,
            last_action_id=action_id,
        ),
        ActionProposed(
            action_id=action_id,
            event_id="e",
            session_id="s1",
            process_id="p",
            business_cluster="c",
            state_version=4,
            action=ACTION,
            tier=ActionTier.critical,
            policy_probability=0.9,
            critic_score=0.8,
            policy_version="pol-1",
            critic_version="crit-1",
            proposed_at=NOW,
        ),
        ActionExecuted(
            action_id=action_id,
            event_id="e",
            session_id="s1",
            process_id="p",
            business_cluster="c",
            state_version=4,
            action=ACTION,
            tier=ActionTier.auto,
            policy_probability=0.9,
            critic_score=0.97,
            threshold=0.95,
            policy_version="pol-1",
            critic_version="crit-1",
            decided_at=NOW,
        ),
        OperatorDeferral(
            event_id="e",
            session_id="s1",
            process_id="p",
            business_cluster="c",
            state_version=4,
            ui_state=UI,
            suggestion=ACTION,
            suggestion_action_id=action_id,
            tier="approval_required",
            policy_probability=0.5,
            critic_score=0.4,
            threshold=0.9,
            reason=DeferralReason.approval_required,
            detail="refunds need approval",
            deferred_at=NOW,
        ),
        OperatorDeferral(
            event_id="e",
            session_id="s1",
            process_id="p",
            business_cluster="c",
            state_version=4,
            ui_state=UIState(),
            reason=DeferralReason.model_unavailable,
            deferred_at=NOW,
        ),
        CopilotFeedback(
            deferral_id="d",
            session_id="s1",
            process_id="p",
            business_cluster="c",
            state_version=4,
            suggestion=ACTION,
            suggestion_action_id=action_id,
            verdict=Verdict.corrected,
            operator_action=Action(action_type="close_chat"),
            operator_id="op7",
            latency_ms=5300,
            given_at=NOW,
        ),
        CopilotFeedback(
            session_id="s1",
            process_id="p",
            business_cluster="c",
            state_version=4,
            suggestion=ACTION,
            verdict=Verdict.accepted,
            operator_id="op7",
            latency_ms=0,
            given_at=NOW,
        ),
        DeadLetter(
            original=b"\x00\xff",
            key=b"k",
            topic="ui.state",
            partition=3,
            offset=17,
            error="bad",
            error_type="DecodeError",
            failed_at=NOW,
        ),
        StageChanged(
            process_id="billing",
            business_cluster="retail",
            from_stage=Stage.copilot,
            to_stage=Stage.selective,
            reason="certified",
            certified_coverage=0.42,
            thresholds_version="t3",
            changed_at=NOW,
        ),
        ActionFailed(
            action_id=action_id,
            event_id="e9",
            session_id="s1",
            process_id="billing",
            business_cluster="retail",
            state_version=4,
            action=ACTION,
            status_code=422,
            response_excerpt='{"error": "no"}',
            error="refused",
            attempts=1,
            failed_at=NOW,
        ),
    ]


def roundtrip(event: EventModel) -> EventModel:
    schema = contracts.parsed_schema(event.avro_name)
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, schema, event.to_avro())
    buffer.seek(0)
    return type(event).from_avro(fastavro.schemaless_reader(buffer, schema, schema))


@pytest.mark.parametrize("event", samples(), ids=lambda e: e.avro_name)
def test_every_contract_round_trips(event: EventModel) -> None:
    assert roundtrip(event) == event


def test_the_samples_cover_every_contract() -> None:
    assert {event.avro_name for event in samples()} == set(contracts.EVENT_RECORDS)


@pytest.mark.parametrize("name", contracts.EVENT_RECORDS)
def test_models_mirror_the_avsc_fields_in_order(name: str) -> None:
    assert list(EVENT_MODELS[name].model_fields) == contracts.field_names(name)


@pytest.mark.parametrize("name", contracts.EVENT_RECORDS)
def test_every_record_carries_a_schema_version_with_a_default(name: str) -> None:
    field = next(f for f in contracts.expanded_schema(name)["fields"] if f["name"] == "schema_version")
    assert field["default"] == EVENT_MODELS[name].model_fields["schema_version"].default >= 1


@pytest.mark.parametrize("name", contracts.EVENT_RECORDS)
def test_added_fields_have_defaults_so_old_records_still_decode(name: str) -> None:
    # The evolution rule: every field after the identifying core is optional. Here we check the
    # weaker invariant the rule relies on: every nullable field defaults to null.
    for field in contracts.expanded_schema(name)["fields"]:
        if isinstance(field["type"], list) and field["type"][0] == "null":
            assert field.get("default", "missing") is None, field["name"]


scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=False), st.text(max_size=20)
)


@given(
    fields=st.dictionaries(names(10), scalars, max_size=8),
    arguments=st.dictionaries(names(10), scalars, max_size=5),
    version=st.integers(0, 2**40),
)
def test_scalar_values_keep_their_type_through_avro(fields: dict, arguments: dict, version: int) -> None:
    event = UIStateChanged(
        session_id="s",
        process_id="p",
        business_cluster="c",
        state_version=version,
        ui_state=UIState(fields=fields),
        last_action=Action(action_type="a", arguments=arguments),
    )
    back = roundtrip(event)
    assert isinstance(back, UIStateChanged)
    assert back.ui_state.fields == fields
    assert [type(v) for v in back.ui_state.fields.values()] == [type(v) for v in fields.values()]
    assert back.last_action == event.last_action


def test_action_id_is_deterministic_and_sensitive_to_each_part() -> None:
    base = action_id_for("s", 1, ACTION)
    assert base == action_id_for(
        "s", 1, Action(action_type="refund", arguments=dict(reversed(ACTION.arguments.items())))
    )
    assert base != action_id_for("s2", 1, ACTION)
    assert base != action_id_for("s", 2, ACTION)
    assert base != action_id_for("s", 1, Action(action_type="refund", arguments={"amount": 13}))


def test_executed_action_must_carry_its_own_id() -> None:
    with pytest.raises(ValidationError, match="is not the id"):
        ActionExecuted(
            action_id="forged",
            event_id="e",
            session_id="s",
            process_id="p",
            business_cluster="c",
            state_version=1,
            action=ACTION,
            tier="auto",
        )


def test_feedback_verdicts_need_the_right_actions() -> None:
    with pytest.raises(ValidationError, match="needs the operator's own action"):
        CopilotFeedback(
            session_id="s",
            process_id="p",
            business_cluster="c",
            state_version=1,
            suggestion=ACTION,
            verdict="corrected",
            operator_id="o",
            latency_ms=1,
        )
    with pytest.raises(ValidationError, match="needs the suggestion"):
        CopilotFeedback(
            session_id="s",
            process_id="p",
            business_cluster="c",
            state_version=1,
            verdict="accepted",
            operator_id="o",
            latency_ms=1,
        )
    accepted = CopilotFeedback(
        session_id="s",
        process_id="p",
        business_cluster="c",
        state_version=1,
        suggestion=ACTION,
        verdict="accepted",
        operator_id="o",
        latency_ms=1,
    )
    assert accepted.executed_action == ACTION


def test_unknown_fields_and_naive_timestamps_are_refused() -> None:
    with pytest.raises(ValidationError):
        UIStateChanged(session_id="s", process_id="p", business_cluster="c", state_version=1, surprise=1)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        UIStateChanged(
            session_id="s", process_id="p", business_cluster="c", state_version=1, timestamp=datetime(2026, 1, 1)
        )
