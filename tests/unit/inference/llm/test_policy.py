"""LLMPolicy against a mock vLLM: the request it sends and how answers become ranked, valid candidates."""

from __future__ import annotations

import math
from typing import Any

import httpx
import pytest

from selective_autonomy.inference.llm.client import VLLMClient
from selective_autonomy.inference.llm.policy import LLMPolicy, parse_action
from selective_autonomy.inference.llm.prompts import PromptBuilder
from selective_autonomy.inference.llm.settings import LLMClientSettings
from selective_autonomy.inference.protocol import ModelUnavailable, Policy
from selective_autonomy.schemas.event_parts import Action
from selective_autonomy.schemas.events import UIStateChanged
from selective_autonomy.schemas.grammar import action_json_schema, validate_action
from selective_autonomy.schemas.process import ProcessSchema

from .conftest import MockServer, completion_choice

SETTINGS = LLMClientSettings(url="http://vllm.test/v1", model="m", max_retries=0)
REFUND = '{"action_type":"refund","arguments":{"reason":"late","amount":3.5}}'
ESCALATE = '{"action_type":"escalate","arguments":{}}'


def _policy(schema: ProcessSchema, server: MockServer, **kwargs: Any) -> LLMPolicy:
    client = VLLMClient(SETTINGS, transport=server.transport())
    return LLMPolicy(schema, client, version="policy-llm-test", **kwargs)


def _answer(per_prompt: list[list[dict[str, Any]]]) -> MockServer:
    def handler(request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        assert len(body["prompt"]) == len(per_prompt)
        choices = [dict(c, index=p * body["n"] + j) for p, group in enumerate(per_prompt) for j, c in enumerate(group)]
        return httpx.Response(200, json={"choices": choices})

    return MockServer(handler)


def test_it_is_a_policy(refund_schema: ProcessSchema) -> None:
    assert isinstance(_policy(refund_schema, _answer([])), Policy)


def test_request_carries_the_grammar_and_asks_for_logprobs(
    refund_schema: ProcessSchema, refund_event: UIStateChanged
) -> None:
    server = _answer([[completion_choice(ESCALATE, [-0.1])] * 3])
    _policy(refund_schema, server, max_new_tokens=40, seed=7).propose([refund_event], top_k=3)
    (body,) = server.requests
    assert body["structured_outputs"] == {"json": action_json_schema(refund_schema)}
    assert body["logprobs"] == 0
    assert (body["n"], body["temperature"], body["seed"], body["max_tokens"]) == (3, 1.0, 7, 40)
    assert body["prompt"] == [PromptBuilder(refund_schema).policy(refund_event)]
    assert "Ada" not in body["prompt"][0]


def test_top_1_is_greedy(refund_schema: ProcessSchema, refund_event: UIStateChanged) -> None:
    server = _answer([[completion_choice(ESCALATE, [-0.1])]])
    (proposal,) = _policy(refund_schema, server).propose([refund_event], top_k=1)
    assert (server.requests[0]["n"], server.requests[0]["temperature"]) == (1, 0.0)
    assert "seed" not in server.requests[0]
    assert proposal.top is not None and proposal.top.action == Action(action_type="escalate")


def test_samples_become_distinct_ranked_candidates(refund_schema: ProcessSchema, refund_event: UIStateChanged) -> None:
    server = _answer(
        [
            [
                completion_choice(ESCALATE, [-0.5, -0.5]),
                completion_choice(REFUND, [-0.1, -0.2]),
                completion_choice(REFUND, [-0.1, -0.2]),
                completion_choice('{"action_type":"refund","arguments":{"reason":"bored","amount":1}}', [-0.01]),
                completion_choice('{"action_type":"refund","arguments":{"rea', [-0.01], finish_reason="length"),
                completion_choice("not json", [-0.01]),
            ]
        ]
    )
    (proposal,) = _policy(refund_schema, server).propose([refund_event], top_k=6)
    assert [c.action.canonical_json() for c in proposal.candidates] == [
        Action(action_type="refund", arguments={"reason": "late", "amount": 3.5}).canonical_json(),
        Action(action_type="escalate").canonical_json(),
    ]
    assert [c.probability for c in proposal.candidates] == pytest.approx([math.exp(-0.3), math.exp(-1.0)])
    assert proposal.policy_version == "policy-llm-test"
    for candidate in proposal.candidates:
        assert validate_action(refund_schema, candidate.action) == []
        assert 0.0 < candidate.probability <= 1.0


def test_top_k_cuts_the_ranking(refund_schema: ProcessSchema, refund_event: UIStateChanged) -> None:
    other = '{"action_type":"refund","arguments":{"reason":"damaged","amount":1}}'
    server = _answer([[completion_choice(ESCALATE, [-0.5]), completion_choice(REFUND, [-0.1]),
                       completion_choice(other, [-2.0])]])  # fmt: skip
    (proposal,) = _policy(refund_schema, server, samples=3).propose([refund_event], top_k=2)
    assert server.requests[0]["n"] == 3
    assert [c.action.action_type for c in proposal.candidates] == ["refund", "escalate"]


def test_a_batch_gets_one_proposal_per_event_in_order(
    refund_schema: ProcessSchema, refund_event: UIStateChanged
) -> None:
    events = [refund_event, refund_event.model_copy(update={"state_version": 4}), refund_event]
    server = _answer(
        [
            [completion_choice(ESCALATE, [-0.1])] * 2,
            [completion_choice("garbage", [-0.1])] * 2,
            [completion_choice(REFUND, [-0.1]), completion_choice(ESCALATE, [-3.0])],
        ]
    )
    proposals = _policy(refund_schema, server).propose(events, top_k=2)
    assert len(server.requests) == 1
    assert [[c.action.action_type for c in p.candidates] for p in proposals] == [
        ["escalate"],
        [],  # nothing valid: an empty proposal, which the gate defers as model_unavailable
        ["refund", "escalate"],
    ]


def test_no_events_no_request(refund_schema: ProcessSchema) -> None:
    server = _answer([])
    assert _policy(refund_schema, server).propose([]) == []
    assert server.requests == []


def test_server_failure_raises_model_unavailable(refund_schema: ProcessSchema, refund_event: UIStateChanged) -> None:
    server = MockServer(lambda request, body: httpx.Response(503, text="overloaded"))
    with pytest.raises(ModelUnavailable):
        _policy(refund_schema, server).propose([refund_event])


def test_wrong_choice_count_raises_model_unavailable(
    refund_schema: ProcessSchema, refund_event: UIStateChanged
) -> None:
    server = MockServer(lambda request, body: httpx.Response(200, json={"choices": [completion_choice(ESCALATE, [0])]}))
    with pytest.raises(ModelUnavailable, match="expected 2 choices"):
        _policy(refund_schema, server).propose([refund_event], top_k=2)


def test_events_whose_prompt_cannot_fit_get_empty_proposals(
    refund_schema: ProcessSchema, refund_event: UIStateChanged
) -> None:
    server = _answer([])
    policy = _policy(refund_schema, server, builder=PromptBuilder(refund_schema, count_tokens=len, max_prompt_tokens=5))
    (proposal,) = policy.propose([refund_event])
    assert proposal.candidates == []
    assert server.requests == []


@pytest.mark.parametrize(
    "text",
    ["[]", "null", '{"action_type":"refund"}', '{"action_type":"fly","arguments":{}}', '{"action_type":""}', "{"],
)
def test_parse_action_rejects(refund_schema: ProcessSchema, text: str) -> None:
    assert parse_action(text, refund_schema) is None


def test_parse_action_accepts(refund_schema: ProcessSchema) -> None:
    assert parse_action(REFUND, refund_schema) == Action(
        action_type="refund", arguments={"reason": "late", "amount": 3.5}
    )
