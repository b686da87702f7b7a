"""LLMCritic against a mock vLLM: the choice constraint, P(accept) from first-token logprobs, failures."""

from __future__ import annotations

import math
from typing import Any

import httpx
import pytest

from selective_autonomy.inference.llm.client import CompletionChoice, VLLMClient
from selective_autonomy.inference.llm.critic import TOP_LOGPROBS, LLMCritic, accept_probability
from selective_autonomy.inference.llm.prompts import PromptBuilder
from selective_autonomy.inference.llm.settings import LLMClientSettings
from selective_autonomy.inference.protocol import Critic, CriticInput, ModelUnavailable, PolicySignals
from selective_autonomy.schemas.event_parts import Action, ActionTier
from selective_autonomy.schemas.events import UIStateChanged
from selective_autonomy.schemas.process import ProcessSchema

from .conftest import MockServer, completion_choice

SETTINGS = LLMClientSettings(url="http://vllm.test/v1", model="c", max_retries=0)


def _choice(first: dict[str, float], text: str = "accept") -> CompletionChoice:
    return CompletionChoice.model_validate(completion_choice(text, [max(first.values())], top_logprobs=[first]))


def test_accept_probability_normalises_over_both_words() -> None:
    first = {"accept": math.log(0.6), "reject": math.log(0.2)}
    assert accept_probability(_choice(first)) == pytest.approx(0.75)


def test_accept_probability_sums_prefix_tokens_and_ignores_fillers() -> None:
    first = {"ac": math.log(0.3), "a": math.log(0.1), "re": math.log(0.4), "r": math.log(0.2), "<s>": -9999.0}
    assert accept_probability(_choice(first, "reject")) == pytest.approx(0.4)


def test_accept_probability_with_one_word_visible() -> None:
    assert accept_probability(_choice({"accept": 0.0, "<pad>": -9999.0})) == 1.0
    assert accept_probability(_choice({"reject": -0.01}, "reject")) == 0.0


@pytest.mark.parametrize("first", [{"<s>": -9999.0}, {"maybe": -0.1}, {}])
def test_accept_probability_without_usable_logprobs_raises(first: dict[str, float]) -> None:
    with pytest.raises(ModelUnavailable):
        accept_probability(_choice(first) if first else CompletionChoice(index=0, text="accept"))


def _items(event: UIStateChanged, n: int) -> list[CriticInput]:
    action = Action(action_type="escalate")
    return [CriticInput(event=event, action=action, tier=ActionTier.critical, signals=PolicySignals())] * n


def _critic(schema: ProcessSchema, server: MockServer) -> LLMCritic:
    return LLMCritic(schema, VLLMClient(SETTINGS, transport=server.transport()), version="critic-llm-test")


def test_score_asks_for_the_choice_with_top_logprobs(
    refund_schema: ProcessSchema, refund_event: UIStateChanged
) -> None:
    probabilities = [0.9, 0.25]

    def handler(request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        choices = [
            completion_choice("accept", [math.log(p)], index=i,
                              top_logprobs=[{"accept": math.log(p), "reject": math.log(1 - p), "<s>": -9999.0}])
            for i, p in enumerate(probabilities)
        ]  # fmt: skip
        return httpx.Response(200, json={"choices": choices})

    server = MockServer(handler)
    critic = _critic(refund_schema, server)
    assert isinstance(critic, Critic)
    scores = critic.score(_items(refund_event, 2))
    assert scores == pytest.approx(probabilities)
    (body,) = server.requests
    assert body["structured_outputs"] == {"choice": ["accept", "reject"]}
    assert (body["temperature"], body["logprobs"], body["n"]) == (0.0, TOP_LOGPROBS, 1)
    assert body["prompt"][0] == PromptBuilder(refund_schema).critic(refund_event, Action(action_type="escalate"))
    assert '"action_type":"escalate"' in body["prompt"][0]


def test_score_of_nothing_sends_nothing(refund_schema: ProcessSchema) -> None:
    server = MockServer(lambda request, body: httpx.Response(500))
    assert _critic(refund_schema, server).score([]) == []
    assert server.requests == []


def test_score_failures_raise_model_unavailable(refund_schema: ProcessSchema, refund_event: UIStateChanged) -> None:
    down = MockServer(lambda request, body: httpx.Response(502, text="bad gateway"))
    with pytest.raises(ModelUnavailable):
        _critic(refund_schema, down).score(_items(refund_event, 1))
    no_logprobs = MockServer(
        lambda request, body: httpx.Response(200, json={"choices": [{"index": 0, "text": "accept"}]})
    )
    with pytest.raises(ModelUnavailable, match="without top logprobs"):
        _critic(refund_schema, no_logprobs).score(_items(refund_event, 1))


def test_an_item_that_cannot_fit_raises(refund_schema: ProcessSchema, refund_event: UIStateChanged) -> None:
    server = MockServer(lambda request, body: httpx.Response(500))
    critic = _critic(refund_schema, server)
    critic.builder = PromptBuilder(refund_schema, count_tokens=len, max_prompt_tokens=5)
    with pytest.raises(ModelUnavailable, match="does not fit"):
        critic.score(_items(refund_event, 1))
    assert server.requests == []
