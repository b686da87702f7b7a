"""The masked card view and the schema-generated correction form."""

from __future__ import annotations

from selective_autonomy.console.cards import argument_fields, card_view, coerce_form_action
from selective_autonomy.console.inbox import Card
from selective_autonomy.schemas.event_parts import Action, DeferralReason, Verdict
from selective_autonomy.schemas.grammar import validate_action
from selective_autonomy.schemas.pii import MASK
from tests.factories import EMAIL, NAME, deferral
from tests.factories import HELPDESK as SCHEMA


def card(suggestion: Action | None = None, reason: DeferralReason = DeferralReason.below_threshold) -> Card:
    return Card(deferral=deferral(suggestion=suggestion, reason=reason), headers=(), created_at=0.0, waiting_since=0.0)


def test_view_masks_fields_chat_actions_suggestion_and_detail() -> None:
    suggestion = Action(action_type="update_email", arguments={"email": "new.address@example.org"})
    view = card_view(card(suggestion=suggestion), SCHEMA)
    assert view.fields == {"customer_name": MASK, "email": MASK, "plan": "pro", "open_invoices": 2}
    assert view.chat[0].text == f"Hi, this is {MASK}, I was charged twice."
    assert view.recent_actions[0].arguments == {"email": MASK}
    assert view.suggestion is not None and view.suggestion.arguments == {"email": MASK}
    assert NAME not in view.detail
    text = view.model_dump_json()
    assert NAME not in text and EMAIL not in text and "new.address" not in text


def test_free_text_quoting_pii_is_scrubbed_in_the_suggestion() -> None:
    suggestion = Action(action_type="send_text", arguments={"text": f"Dear {NAME}, we refunded you."})
    view = card_view(card(suggestion=suggestion), SCHEMA)
    assert view.suggestion is not None and view.suggestion.arguments == {"text": f"Dear {MASK}, we refunded you."}


def test_without_a_schema_no_value_is_shown_and_only_accept_is_offered() -> None:
    view = card_view(card(), None)
    assert set(view.fields.values()) == {MASK} and view.chat == []
    assert view.answers == [Verdict.accepted] and not view.schema_known
    assert NAME not in view.model_dump_json() and EMAIL not in view.model_dump_json()


def test_no_suggestion_allows_only_correct() -> None:
    view = card_view(card(reason=DeferralReason.model_unavailable), SCHEMA)
    assert view.suggestion is None and view.answers == [Verdict.corrected]


def test_form_fields_follow_the_argument_types() -> None:
    fields = {f.name: f for f in argument_fields(SCHEMA, "issue_refund", {"amount": 12.5, "reason": "outage"})}
    assert fields["amount"].input == "number" and fields["amount"].step == "any" and fields["amount"].value == "12.5"
    assert fields["reason"].input == "select" and fields["reason"].options == ("duplicate", "outage", "goodwill")
    assert fields["reason"].value == "outage"
    assert fields["notify"].input == "select" and not fields["notify"].required
    level = argument_fields(SCHEMA, "set_priority")[0]
    assert level.input == "number" and level.step == "1"
    text = argument_fields(SCHEMA, "send_text", {"text": f"Hi {MASK}"})[0]
    assert text.input == "textarea" and text.value == ""  # a masked prefill is never put back
    assert argument_fields(SCHEMA, "nope") == []


def test_form_strings_are_typed_by_the_schema() -> None:
    raw = {"amount": "12", "reason": "outage", "notify": "true"}
    assert coerce_form_action(SCHEMA, "issue_refund", raw) == {"amount": 12, "reason": "outage", "notify": True}
    assert coerce_form_action(SCHEMA, "issue_refund", {"amount": "12.75", "notify": ""}) == {"amount": 12.75}
    typed = coerce_form_action(SCHEMA, "set_priority", {"level": "high"})
    assert typed == {"level": "high"}
    assert validate_action(SCHEMA, Action(action_type="set_priority", arguments=typed)) == [
        "argument 'level' of 'set_priority' must be an integer, got str"
    ]
    assert coerce_form_action(SCHEMA, "set_priority", {"level": "2", "extra": "x"}) == {"level": 2, "extra": "x"}
