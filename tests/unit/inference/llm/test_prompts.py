"""Prompt and target formatting: deterministic, PII-free, in the decoder's key order, fitted to a context."""

from __future__ import annotations

import json

import pytest

from selective_autonomy.inference.llm.prompts import (
    ASSISTANT,
    CRITIC_INSTRUCTION,
    POLICY_INSTRUCTION,
    USER,
    PromptBuilder,
    action_text,
    critic_prompt,
    critic_target,
    policy_prompt,
)
from selective_autonomy.schemas.event_parts import Action, ChatTurn, Speaker, UIState
from selective_autonomy.schemas.events import UIStateChanged
from selective_autonomy.schemas.grammar import action_json_schema
from selective_autonomy.schemas.process import ProcessSchema
from selective_autonomy.schemas.view import render_view


def test_policy_prompt_wraps_the_view_in_one_chat_turn() -> None:
    prompt = policy_prompt('{"step":1}')
    assert prompt == f'{USER}\n{POLICY_INSTRUCTION}\n{{"step":1}}\n{ASSISTANT}\n'


def test_critic_prompt_holds_view_and_action() -> None:
    prompt = critic_prompt('{"step":1}', '{"action_type":"x","arguments":{}}')
    assert prompt.startswith(f"{USER}\n{CRITIC_INSTRUCTION}\n")
    assert 'screen: {"step":1}\naction: {"action_type":"x","arguments":{}}\n' in prompt
    assert prompt.endswith(f"{ASSISTANT}\n")


def test_action_text_follows_the_schema_argument_order(refund_schema: ProcessSchema) -> None:
    action = Action(action_type="refund", arguments={"amount": 3.5, "reason": "late"})
    text = action_text(action, refund_schema)
    assert text == '{"action_type":"refund","arguments":{"reason":"late","amount":3.5}}'
    branch = action_json_schema(refund_schema)["anyOf"][0]
    assert list(branch["properties"]) == ["action_type", "arguments"]
    assert list(branch["properties"]["arguments"]["properties"]) == ["reason", "amount"]
    assert Action.model_validate(json.loads(text)) == action


def test_action_text_keeps_non_ascii_and_compact_separators(helpdesk_schema_free_text: ProcessSchema) -> None:
    action = Action(action_type="send_text", arguments={"text": "Привет, мир"})
    assert action_text(action, helpdesk_schema_free_text) == (
        '{"action_type":"send_text","arguments":{"text":"Привет, мир"}}'
    )


@pytest.fixture
def helpdesk_schema_free_text() -> ProcessSchema:
    return ProcessSchema(process_id="chat")


@pytest.mark.parametrize(("label", "target"), [(True, "accept"), (False, "reject"), ("accept", "accept")])
def test_critic_target(label: bool | str, target: str) -> None:
    assert critic_target(label) == target  # type: ignore[arg-type]


def test_critic_target_refuses_other_labels() -> None:
    with pytest.raises(ValueError, match="critic label"):
        critic_target("maybe")  # type: ignore[arg-type]


def test_prompts_mask_pii(refund_schema: ProcessSchema, refund_event: UIStateChanged) -> None:
    builder = PromptBuilder(refund_schema)
    for prompt in (builder.policy(refund_event), builder.critic(refund_event, Action(action_type="escalate"))):
        assert prompt is not None
        assert "Ada" not in prompt
        assert "[masked]" in prompt


def test_prompts_are_deterministic(refund_schema: ProcessSchema, refund_event: UIStateChanged) -> None:
    builder = PromptBuilder(refund_schema)
    assert builder.policy(refund_event) == builder.policy(refund_event)
    assert builder.policy(refund_event) == policy_prompt(render_view(refund_event, refund_schema).text)


def _chatty_event() -> UIStateChanged:
    turns = [ChatTurn(speaker=Speaker.customer, text=f"message number {i} " * 20) for i in range(6)]
    return UIStateChanged(
        session_id="s", process_id="chat", business_cluster="default", state_version=1,
        ui_state=UIState(chat_tail=turns),
    )  # fmt: skip


def test_builder_shrinks_the_view_to_fit() -> None:
    schema = ProcessSchema(process_id="chat")
    event = _chatty_event()

    def count(text: str) -> int:
        return len(text) // 3

    full = PromptBuilder(schema).policy(event)
    assert full is not None and count(full) > 200
    fitted = PromptBuilder(schema, count_tokens=count, max_prompt_tokens=200).policy(event)
    assert fitted is not None
    assert count(fitted) <= 200
    assert fitted.startswith(f"{USER}\n{POLICY_INSTRUCTION}\n") and fitted.endswith(f"{ASSISTANT}\n")
    assert "message number 5" in fitted  # the newest turn is kept longest


def test_builder_gives_up_when_nothing_fits() -> None:
    schema = ProcessSchema(process_id="chat")
    builder = PromptBuilder(schema, count_tokens=len, max_prompt_tokens=10)
    assert builder.policy(_chatty_event()) is None
    assert builder.critic(_chatty_event(), Action(action_type="close_chat")) is None
