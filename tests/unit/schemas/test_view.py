from __future__ import annotations

import json
import string

from hypothesis import assume, given
from hypothesis import strategies as st

from selective_autonomy.schemas.event_parts import Action, Speaker
from selective_autonomy.schemas.events import UIStateChanged
from selective_autonomy.schemas.pii import MASK, pii_scrubber
from selective_autonomy.schemas.view import (
    MIN_VALUE_CHARS,
    ViewBudget,
    canonical_json,
    estimate_tokens,
    render_view,
)
from tests.support.strategies import SCHEMA, make_event, ui_events

budgets = st.builds(
    ViewBudget,
    max_tokens=st.integers(1, 700),
    max_chat_turns=st.integers(0, 8),
    max_recent_actions=st.integers(0, 12),
    max_value_chars=st.integers(1, 300),
)


def test_layout_order_and_masking() -> None:
    event = make_event(
        fields={"zeta": 1, "status": "open", "customer_name": "Ada Lovelace", "alpha": None, "amount": 12.5},
        chat=[(Speaker.customer, "Hi, I am Ada Lovelace"), (Speaker.operator, "Hello!")],
        recent=[
            Action(action_type="lookup_order", arguments={"order_id": "A1"}),
            Action(action_type="schedule_callback", arguments={"phone": "555-0100", "at": "2024-03-04T10:00:00Z"}),
            Action(action_type="send_text", arguments={"text": "Dear Ada Lovelace, call 555-0100"}),
        ],
    )
    view = render_view(event, SCHEMA)
    assert list(view.data) == [
        "process_id",
        "business_cluster",
        "step",
        "elapsed_s",
        "fields",
        "chat",
        "recent_actions",
        "controls",
    ]
    assert view.data["step"] == 3 and view.data["elapsed_s"] == 90
    assert list(view.data["fields"]) == ["customer_name", "status", "amount", "alpha", "zeta"]
    assert view.data["fields"]["customer_name"] == MASK
    assert view.data["chat"][0] == {"speaker": "customer", "text": f"Hi, I am {MASK}"}
    assert view.data["recent_actions"][1]["arguments"] == {"at": "2024-03-04T10:00:00Z", "phone": MASK}
    assert view.data["recent_actions"][2]["arguments"]["text"] == f"Dear {MASK}, call {MASK}"
    assert "Ada" not in view.text and "555-0100" not in view.text
    assert view.text == canonical_json(view.data)
    assert json.loads(view.text) == view.data
    assert not view.truncated and view.token_estimate == estimate_tokens(view.text)


def test_numbers_quoting_a_pii_value_are_masked() -> None:
    view = render_view(make_event(fields={"email": 4242424242, "items": 4242424242, "amount": 1.5}), SCHEMA)
    assert view.data["fields"] == {"email": MASK, "amount": 1.5, "items": MASK}
    assert "4242424242" not in view.text


def test_unknown_case_start_has_no_elapsed() -> None:
    event = make_event()
    event = event.model_copy(update={"ui_state": event.ui_state.model_copy(update={"case_started_at": None})})
    assert "elapsed_s" not in render_view(event, SCHEMA).data


def test_newest_turns_and_actions_are_kept() -> None:
    event = make_event(
        chat=[(Speaker.customer, f"turn {i}") for i in range(9)],
        recent=[Action(action_type="set_items", arguments={"count": i}) for i in range(14)],
    )
    view = render_view(event, SCHEMA, ViewBudget(max_tokens=10_000))
    assert [t["text"] for t in view.data["chat"]] == [f"turn {i}" for i in range(3, 9)]
    assert [a["arguments"]["count"] for a in view.data["recent_actions"]] == list(range(4, 14))


def test_budget_sheds_chat_before_actions() -> None:
    event = make_event(
        chat=[(Speaker.customer, "x" * 150) for _ in range(6)],
        recent=[Action(action_type="escalate") for _ in range(10)],
    )
    full = render_view(event, SCHEMA, ViewBudget(max_tokens=10_000))
    tight = render_view(event, SCHEMA, ViewBudget(max_tokens=full.token_estimate - 60))
    assert len(tight.data["chat"]) < 6
    assert len(tight.data["recent_actions"]) == 10
    assert tight.token_estimate <= full.token_estimate - 60


def test_long_values_are_cut_then_unknown_fields_dropped() -> None:
    event = make_event(fields={"note": "n" * 1000, "zz_extra": "e" * 1000})
    capped = render_view(event, SCHEMA, ViewBudget(max_tokens=10_000, max_value_chars=50))
    assert len(capped.data["fields"]["note"]) == 50 and capped.data["fields"]["note"].endswith("…")
    shortest = render_view(event, SCHEMA, ViewBudget(max_tokens=10_000, max_value_chars=MIN_VALUE_CHARS))
    skeleton = render_view(event, SCHEMA, ViewBudget(max_tokens=shortest.token_estimate - 1))
    assert skeleton.data["fields"] == {"note": "n" * (MIN_VALUE_CHARS - 1) + "…"}
    assert not skeleton.truncated


def test_skeleton_that_does_not_fit_is_cut() -> None:
    view = render_view(make_event(fields={"order_id": "A" * 100}), SCHEMA, ViewBudget(max_tokens=5))
    assert view.truncated
    assert view.token_estimate <= 5 and view.text.endswith("…")


def test_non_finite_numbers_render_as_valid_json() -> None:
    view = render_view(make_event(fields={"amount": float("nan"), "legacy": float("-inf")}), SCHEMA)
    assert view.data["fields"] == {"amount": "nan", "legacy": "-inf"}
    json.loads(view.text)


def test_scrubber_masks_longest_first_and_settles() -> None:
    scrub = pii_scrubber(["Ada", "Ada Lovelace"])
    assert scrub("Ada Lovelace and Ada") == f"{MASK} and {MASK}"
    assert pii_scrubber([])("anything") == "anything"
    # A replacement that completes a new occurrence next to the mask does not let it through.
    tricky = pii_scrubber(["d]xy"])
    assert "d]xy" not in tricky("d]xyxy" + "[masked]xy")


@given(ui_events(), budgets)
def test_render_is_deterministic(event: UIStateChanged, budget: ViewBudget) -> None:
    first = render_view(event, SCHEMA, budget)
    again = render_view(UIStateChanged.model_validate_json(event.model_dump_json()), SCHEMA, budget)
    assert first.text.encode() == again.text.encode()
    assert first == again


@given(ui_events(), budgets)
def test_render_is_always_within_budget(event: UIStateChanged, budget: ViewBudget) -> None:
    view = render_view(event, SCHEMA, budget)
    assert view.token_estimate == estimate_tokens(view.text) <= budget.max_tokens
    if not view.truncated:
        assert json.loads(view.text) == json.loads(canonical_json(view.data))


# Upper-case letters only: no JSON escape, key, marker or number rendering can produce them, so
# the value can only reach the text by leaking from the event.
pii_texts = st.text(alphabet=string.ascii_uppercase, min_size=4, max_size=12)


@given(ui_events(), budgets, pii_texts, st.data())
def test_pii_never_leaks(event: UIStateChanged, budget: ViewBudget, secret: str, data: st.DataObject) -> None:
    assume(secret not in event.model_dump_json())
    state = event.ui_state
    # Quote the secret in some chat turns, action arguments and an unknown field.
    chat = [
        turn.model_copy(update={"text": turn.text + " " + secret}) if data.draw(st.booleans()) else turn
        for turn in state.chat_tail
    ]
    actions = [
        a.model_copy(update={"arguments": {**a.arguments, "order_id": f"x{secret}y"}})
        if data.draw(st.booleans())
        else a
        for a in state.recent_actions
    ]
    field = data.draw(st.sampled_from(["customer_name", "email"]))
    fields = {**state.fields, field: secret, "zz_extra": f"about {secret}"}
    leaky = event.model_copy(
        update={"ui_state": state.model_copy(update={"fields": fields, "chat_tail": chat, "recent_actions": actions})}
    )
    view = render_view(leaky, SCHEMA, budget)
    assert secret not in view.text
    assert secret not in json.dumps(view.data, ensure_ascii=False)


@given(ui_events(), st.text(alphabet=string.ascii_uppercase, min_size=4, max_size=12))
def test_pii_argument_never_leaks(event: UIStateChanged, phone: str) -> None:
    assume(phone not in event.model_dump_json())
    state = event.ui_state
    callback = Action(action_type="schedule_callback", arguments={"at": "2024-03-04T10:00:00Z", "phone": phone})
    chat = (
        [*state.chat_tail[-2:], state.chat_tail[-1].model_copy(update={"text": f"call {phone}"})]
        if state.chat_tail
        else []
    )
    leaky = event.model_copy(
        update={"ui_state": state.model_copy(update={"recent_actions": [callback], "chat_tail": chat})}
    )
    assert phone not in render_view(leaky, SCHEMA).text
