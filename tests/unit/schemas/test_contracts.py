"""Every Avro contract round-trips through fastavro and matches its pydantic mirror."""

from __future__ import annotations

import io
from datetime import datetime

import fastavro
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from selective_autonomy.errors import ContractError
from selective_autonomy.schemas import contracts
from selective_autonomy.schemas.event_parts import Action, ActionTier, DeferralReason, Stage, UIState, Verdict
from selective_autonomy.schemas.events import (
    EVENT_MODELS,
    ActionExecuted,
    CopilotFeedback,
    EventModel,
    OperatorDeferral,
    UIStateChanged,
    action_id_for,
)
from tests.factories import ACTION, NOW, samples
from tests.support.strategies import names


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


def _deferral(**changes: object) -> OperatorDeferral:
    fields: dict[str, object] = {
        "event_id": "e",
        "session_id": "s1",
        "process_id": "p",
        "business_cluster": "c",
        "state_version": 4,
        "ui_state": UIState(fields={"order_id": "A-1"}),
        "suggestion": Action(action_type="lookup"),
        "suggestion_action_id": action_id_for("s1", 4, Action(action_type="lookup")),
        "tier": ActionTier.auto,
        "policy_probability": 0.7,
        "critic_score": 0.6,
        "threshold": 0.8,
        "reason": DeferralReason.below_threshold,
        "policy_version": "pol-1",
        "critic_version": "cri-1",
        "deferred_at": NOW,
        "state_at": NOW.replace(year=2024),
        "stage": Stage.selective,
    }
    return OperatorDeferral.model_validate(fields | changes)


def test_a_deferral_rebuilds_the_state_it_answers() -> None:
    deferral = _deferral()
    state = deferral.state_event()
    assert (state.event_id, state.session_id, state.state_version, state.ui_state) == ("e", "s1", 4, deferral.ui_state)
    assert state.timestamp == deferral.state_at
    assert _deferral(state_at=None).state_event().timestamp == NOW  # v1: the deferral's own time stands in


def test_an_answer_executes_with_the_models_numbers_only_when_the_suggestion_ran() -> None:
    deferral = _deferral()
    accepted = deferral.executed(deferral.suggestion, accepted=True, tier=ActionTier.auto, operator_id="ann")  # type: ignore[arg-type]
    assert accepted.action_id == deferral.suggestion_action_id
    assert (accepted.policy_probability, accepted.critic_version, accepted.executed_by) == (0.7, "cri-1", "operator")
    own = Action(action_type="refund")
    corrected = deferral.executed(own, accepted=False, tier=ActionTier.critical, operator_id="ann")
    assert corrected.action_id == action_id_for("s1", 4, own) and corrected.operator_id == "ann"
    assert (corrected.policy_probability, corrected.threshold, corrected.policy_version) == (None, None, None)


def test_feedback_for_an_answer_and_for_an_audit_copies_what_it_judges() -> None:
    deferral = _deferral()
    own = Action(action_type="refund")
    answer = CopilotFeedback.for_answer(
        deferral, verdict=Verdict.corrected, operator_action=own, operator_id="ann", latency_ms=-3, feedback_id="f1"
    )
    assert (answer.feedback_id, answer.deferral_id, answer.suggestion, answer.latency_ms) == (
        "f1",
        deferral.deferral_id,
        deferral.suggestion,
        0,
    )
    assert (answer.critic_score, answer.policy_version, answer.is_audit) == (0.6, "pol-1", False)
    executed = deferral.executed(deferral.suggestion, accepted=True, tier=ActionTier.auto, operator_id="ann")  # type: ignore[arg-type]
    right = CopilotFeedback.for_audit(
        executed, operator_action=None, operator_id="bob", latency_ms=9, inclusion_probability=0.05
    )
    assert (right.verdict, right.is_audit, right.suggestion_action_id) == (Verdict.accepted, True, executed.action_id)
    assert right.inclusion_probability == 0.05
    wrong = CopilotFeedback.for_audit(
        executed, operator_action=own, operator_id="bob", latency_ms=9, inclusion_probability=0.05
    )
    assert (wrong.verdict, wrong.operator_action) == (Verdict.corrected, own)


def test_a_new_deferral_must_state_its_stage() -> None:
    fields = _deferral().model_dump()
    del fields["stage"]
    with pytest.raises(ValidationError, match="stage"):
        OperatorDeferral.model_validate(fields)


def test_the_executed_action_of_feedback_is_never_missing_silently() -> None:
    own = Action(action_type="refund")
    corrected = CopilotFeedback.for_answer(
        _deferral(), verdict=Verdict.corrected, operator_action=own, operator_id="ann", latency_ms=1
    )
    assert corrected.executed_action == own
    broken = corrected.model_copy(update={"operator_action": None})  # model_copy skips validation
    with pytest.raises(ContractError, match="without its action"):
        _ = broken.executed_action
