"""Bodies against the UIStateChanged contract and the process schema."""

from __future__ import annotations

from typing import Any

import pytest

from selective_autonomy.edges.ingest.validation import parse_json, validate_event
from selective_autonomy.schemas.events import UIStateChanged
from selective_autonomy.webapi.errors import Violation
from tests.factories import BILLING_TYPED as SCHEMA
from tests.factories import body
from tests.support.fakes import Schemas

SCHEMAS = Schemas(SCHEMA)


def violations(document: Any) -> dict[str, str]:
    checked = validate_event(document, SCHEMAS)
    assert isinstance(checked, list), "expected violations"
    return {v.loc: v.msg for v in checked}


def fields(**values: Any) -> dict[str, Any]:
    base = body()
    base["ui_state"]["fields"].update(values)
    return base


def test_a_valid_body_becomes_the_event() -> None:
    event = validate_event(body(), SCHEMAS)
    assert isinstance(event, UIStateChanged)
    assert event.session_id == "s1" and event.state_version == 3 and event.event_id  # generated


def test_the_contract_refuses_unknown_keys_missing_ids_and_naive_timestamps() -> None:
    found = violations(body(surprise=1, session_id="", timestamp="2026-03-02T09:00:00"))
    assert "extra" in found["surprise"].lower() or "not permitted" in found["surprise"]
    assert "session_id" in found
    assert "timestamp" in found
    assert violations([body()]) == {"body": "must be a JSON object (one UIStateChanged)"}


def test_unknown_process_and_cluster() -> None:
    assert "unknown process 'shipping' (known: billing)" in violations(body(process_id="shipping"))["process_id"]
    assert "unknown business cluster 'gold'" in violations(body(business_cluster="gold"))["business_cluster"]


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("nickname", "Ada", "unknown field 'nickname'"),
        ("plan", "gold", "must be one of ['basic', 'pro']"),
        ("tickets", 2.0, "must be an integer, got float"),
        ("tickets", True, "must be an integer, got bool"),
        ("tickets", "2", "must be an integer, got str"),
        ("balance", False, "must be a number, got bool"),
        ("vip", 1, "must be a boolean, got int"),
        ("due", "tomorrow", "must be an RFC 3339 date-time"),
        ("email", 5, "must be a string, got int"),
    ],
)
def test_field_names_types_and_enum_values(name: str, value: Any, message: str) -> None:
    assert message in violations(fields(**{name: value}))[f"ui_state.fields.{name}"]


def test_valid_values_of_every_type_and_null_pass() -> None:
    document = fields(balance=3, vip=False, due="2026-03-02T10:00:00+01:00", plan=None, tickets=0)
    assert isinstance(validate_event(document, SCHEMAS), UIStateChanged)


def test_required_fields_must_be_present_and_not_null() -> None:
    document = body()
    del document["ui_state"]["fields"]["customer_id"]
    assert violations(document) == {"ui_state.fields.customer_id": "required field is missing or null"}
    assert "ui_state.fields.customer_id" in violations(fields(customer_id=None))


def test_controls_and_actions_follow_the_grammar() -> None:
    document = body(last_action={"action_type": "refund", "arguments": {"amount": "ten"}})
    document["ui_state"]["controls"] = ["lookup_order", "delete_everything"]
    document["ui_state"]["recent_actions"] = [{"action_type": "lookup_order", "arguments": {}}]
    found = violations(document)
    assert "unknown control 'delete_everything'" in found["ui_state.controls.1"]
    assert "missing required argument 'order_id'" in found["ui_state.recent_actions.0"]
    assert "must be a number" in found["last_action"]


def test_every_violation_is_reported_at_once() -> None:
    document = fields(nickname="x", plan="gold", tickets="many")
    assert len(validate_event(document, SCHEMAS)) == 3  # type: ignore[arg-type]


def test_prefixes_locate_items_of_a_batch() -> None:
    checked = validate_event(body(process_id="nope"), SCHEMAS, prefix="events.4.")
    assert isinstance(checked, list) and checked[0] == Violation(loc="events.4.process_id", msg=checked[0].msg)


def test_json_parsing_refuses_nan_and_non_utf8() -> None:
    assert parse_json(b'{"a": 1.5}') == {"a": 1.5}
    for raw in (b'{"a": NaN}', b'{"a": Infinity}', b"\xff\xfe", b"{", b""):
        with pytest.raises(ValueError):
            parse_json(raw)
