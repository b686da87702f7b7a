"""The view-budget measurement's own counting: which argument values count, and when one is visible."""

from __future__ import annotations

from datetime import timedelta

from bench.bench_view_budget import SampledState, free_text_values, measure
from selective_autonomy.schemas.event_parts import Action, ChatTurn, Speaker, UIState
from selective_autonomy.schemas.events import UIStateChanged
from tests.factories import FLIGHTS as SCHEMA
from tests.factories import T0


def words(text: str) -> int:
    """A token counter for the test: one token per word-ish chunk."""
    return len(text.replace('"', " ").replace(",", " ").split())


def state(chat: list[str], fields: dict[str, str], values: tuple[str, ...]) -> SampledState:
    event = UIStateChanged(
        session_id="d1",
        process_id="flights",
        business_cluster="default",
        state_version=1,
        timestamp=T0 + timedelta(seconds=30),
        ui_state=UIState(fields=fields, chat_tail=[ChatTurn(speaker=Speaker.customer, text=t) for t in chat]),
    )
    return SampledState(SCHEMA, event, values)


def test_free_text_values_leave_out_enums_numbers_and_blanks() -> None:
    action = Action(action_type="book", arguments={"city": " Seattle ", "seat": "aisle", "travelers": 2})
    assert free_text_values(action, SCHEMA) == ("seattle",)
    assert free_text_values(Action(action_type="book", arguments={"city": "  "}), SCHEMA) == ()


def test_a_value_said_only_in_the_chat_is_visible_only_while_the_chat_is_shown() -> None:
    sample = [
        state(["I fly from Vancouver", "to Seattle please"], {"origin": "Vancouver"}, ("seattle",)),
        state([], {"origin": "Portland"}, ("portland",)),
        state([], {}, ()),
    ]
    with_chat = measure(sample, words, max_prompt_tokens=400, chat_turns=2)
    without_chat = measure(sample, words, max_prompt_tokens=400, chat_turns=0)

    assert with_chat["argument_values"] == without_chat["argument_values"] == 2
    assert with_chat["states_with_arguments"] == 2
    assert with_chat["argument_values_visible"] == 1.0
    assert without_chat["argument_values_visible"] == 0.5
    assert with_chat["chat_turns_shown_mean"] == round(2 / 3, 2)
    assert without_chat["chat_turns_shown_mean"] == 0.0
    chatty = sample[:1]
    longer = measure(chatty, words, max_prompt_tokens=400, chat_turns=2)["prompt_tokens_median"]
    assert longer > measure(chatty, words, max_prompt_tokens=400, chat_turns=0)["prompt_tokens_median"]


def test_a_budget_too_small_for_any_view_counts_as_not_fitted_and_nothing_visible() -> None:
    sample = [state(["to Seattle please"], {"origin": "Vancouver"}, ("seattle",))]
    row = measure(sample, words, max_prompt_tokens=2, chat_turns=2)
    assert row["not_fitted"] == 1
    assert row["argument_values_visible"] == 0.0
