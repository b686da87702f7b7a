"""The vLLM client against a mock transport: request shape, retries, and every failure as ModelUnavailable."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from selective_autonomy.inference.llm.client import CompletionLogprobs, CompletionResponse, VLLMClient
from selective_autonomy.inference.llm.settings import LLMClientSettings
from selective_autonomy.inference.protocol import ModelUnavailable

from .conftest import MockServer, completion_choice

Handler = Callable[[httpx.Request, dict[str, Any]], httpx.Response]
SETTINGS = LLMClientSettings(url="http://vllm.test/v1", model="m", timeout_s=1.0, max_retries=2, retry_backoff_s=0.0)


def _ok(request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
    n = body.get("n", 1)
    choices = [completion_choice("x", [-0.5], index=i) for i in range(len(body["prompt"]) * n)]
    return httpx.Response(200, json={"id": "c", "model": body["model"], "choices": choices})


def _client(server: MockServer, settings: LLMClientSettings = SETTINGS) -> VLLMClient:
    return VLLMClient(settings, transport=server.transport())


def test_complete_sends_one_request_for_all_prompts() -> None:
    server = MockServer(_ok)
    with _client(server) as client:
        response = client.complete(
            ["a", "b"], max_tokens=7, n=3, temperature=1.0, logprobs=0,
            structured_outputs={"json": {"type": "object"}}, seed=5,
        )  # fmt: skip
    assert server.paths == ["/v1/completions"]
    assert server.requests == [
        {
            "model": "m", "prompt": ["a", "b"], "max_tokens": 7, "n": 3, "temperature": 1.0, "logprobs": 0,
            "structured_outputs": {"json": {"type": "object"}}, "seed": 5,
        }
    ]  # fmt: skip
    groups = response.by_prompt(2, 3)
    assert [[c.index for c in g] for g in groups] == [[0, 1, 2], [3, 4, 5]]


def test_more_prompts_than_one_request_may_carry_are_asked_in_turn_and_numbered_as_one() -> None:
    server = MockServer(_ok)
    settings = SETTINGS.model_copy(update={"max_prompts_per_request": 2})
    response = _client(server, settings).complete(["a", "b", "c", "d", "e"], max_tokens=1, n=2, seed=3)
    assert [body["prompt"] for body in server.requests] == [["a", "b"], ["c", "d"], ["e"]]
    assert all(body["n"] == 2 and body["seed"] == 3 for body in server.requests)
    groups = response.by_prompt(5, 2)
    assert [[c.index for c in g] for g in groups] == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]


def test_a_chunk_answered_short_is_caught_like_a_short_answer() -> None:
    def short_second(request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        if body["prompt"] == ["c"]:
            return httpx.Response(200, json={"id": "c", "model": "m", "choices": []})
        return _ok(request, body)

    settings = SETTINGS.model_copy(update={"max_prompts_per_request": 2})
    response = _client(MockServer(short_second), settings).complete(["a", "b", "c"], max_tokens=1)
    with pytest.raises(ModelUnavailable, match="expected 3 choices"):
        response.by_prompt(3, 1)


def test_optional_fields_are_left_out() -> None:
    server = MockServer(_ok)
    _client(server).complete(["a"], max_tokens=1)
    assert set(server.requests[0]) == {"model", "prompt", "max_tokens", "n", "temperature"}


def test_model_name_falls_back_to_the_given_one() -> None:
    server = MockServer(_ok)
    VLLMClient(SETTINGS.model_copy(update={"model": None}), model="v1", transport=server.transport()).complete(
        ["a"], max_tokens=1
    )
    assert server.requests[0]["model"] == "v1"
    with pytest.raises(ValueError, match="no served model name"):
        VLLMClient(SETTINGS.model_copy(update={"model": None}))


def test_api_key_is_sent_as_bearer_token() -> None:
    seen: list[str | None] = []

    def handler(request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        seen.append(request.headers.get("authorization"))
        return _ok(request, body)

    settings = LLMClientSettings.model_validate({**SETTINGS.model_dump(), "api_key": "s3cret"})
    _client(MockServer(handler), settings).complete(["a"], max_tokens=1)
    assert seen == ["Bearer s3cret"]
    assert "s3cret" not in repr(settings)


def test_transient_failures_are_retried() -> None:
    answers = iter([httpx.Response(503, json={"error": {"message": "busy"}}), None])

    def handler(request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        answer = next(answers)
        if answer is None:
            return _ok(request, body)
        return answer

    server = MockServer(handler)
    response = _client(server).complete(["a"], max_tokens=1)
    assert len(server.requests) == 2
    assert response.choices[0].text == "x"


@pytest.mark.parametrize(
    ("failure", "message"),
    [
        (httpx.ConnectError("refused"), "cannot reach"),
        (httpx.ReadTimeout("slow"), "timed out"),
        (httpx.Response(500, json={"error": {"message": "engine dead"}}), "engine dead"),
        (httpx.Response(429, text="slow down"), "HTTP 429"),
    ],
)
def test_retries_exhausted_raise_model_unavailable(failure: Exception | httpx.Response, message: str) -> None:
    def handler(request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        if isinstance(failure, httpx.Response):
            return failure
        raise failure

    server = MockServer(handler)
    with pytest.raises(ModelUnavailable, match=message) as caught:
        _client(server).complete(["a"], max_tokens=1)
    assert "3 attempt(s)" in str(caught.value)
    assert len(server.requests) == 3


def test_a_refusal_is_not_retried() -> None:
    def handler(request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        return httpx.Response(404, json={"error": {"message": "The model `m` does not exist."}})

    server = MockServer(handler)
    with pytest.raises(ModelUnavailable, match="HTTP 404: The model `m` does not exist"):
        _client(server).complete(["a"], max_tokens=1)
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, text="<html>proxy error</html>"),
        httpx.Response(200, json={"choices": [{"text": 3}]}),
        httpx.Response(200, json=["not", "an", "object"]),
    ],
)
def test_an_unparseable_answer_raises_model_unavailable(response: httpx.Response) -> None:
    server = MockServer(lambda request, body: response)
    with pytest.raises(ModelUnavailable):
        _client(server).complete(["a"], max_tokens=1)


def test_missing_choices_raise_model_unavailable() -> None:
    response = CompletionResponse.model_validate({"choices": [completion_choice("x", [0.0], index=0)]})
    with pytest.raises(ModelUnavailable, match="expected 2 choices"):
        response.by_prompt(2, 1)


def test_unreachable_server_raises_model_unavailable() -> None:
    settings = LLMClientSettings(url="http://127.0.0.1:9/v1", model="m", timeout_s=0.5, max_retries=1,
                                 retry_backoff_s=0.0)  # fmt: skip
    with pytest.raises(ModelUnavailable, match="cannot reach"):
        VLLMClient(settings).complete(["a"], max_tokens=1)


def test_models_lists_served_names() -> None:
    server = MockServer(lambda request, body: httpx.Response(200, json={"object": "list", "data": [{"id": "m"}]}))
    assert _client(server).models() == ["m"]
    assert server.paths == ["/v1/models"]


def test_sequence_logprob() -> None:
    assert CompletionLogprobs(token_logprobs=[-0.5, -0.25, 0.0]).sequence_logprob() == -0.75
    assert CompletionLogprobs(token_logprobs=[-0.5, None]).sequence_logprob() == -math.inf
    assert CompletionLogprobs(token_logprobs=[-9999.0]).sequence_logprob() == -math.inf
    assert CompletionLogprobs(token_logprobs=[]).sequence_logprob() == 0.0


ADAPTER = Path("/artefacts/helpdesk/policy-llm-v2")


def _adapter_server(loaded: set[str]) -> MockServer:
    """vLLM with runtime LoRA loading: completions for loaded names only, loads answered in plain text."""

    def handle(request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        if request.url.path.endswith("/load_lora_adapter"):
            if body["lora_name"] in loaded:
                message = f"The lora adapter '{body['lora_name']}' has already been loaded."
                return httpx.Response(400, json={"error": {"message": message, "code": 400}})
            loaded.add(body["lora_name"])
            return httpx.Response(200, text=f"Success: LoRA adapter '{body['lora_name']}' added successfully.")
        if body["model"] not in loaded:
            return httpx.Response(404, json={"error": {"message": f"The model `{body['model']}` does not exist."}})
        return _ok(request, body)

    return MockServer(handle)


def _adapter_client(server: MockServer) -> VLLMClient:
    return VLLMClient(
        SETTINGS.model_copy(update={"model": None}), model="v2", adapter=ADAPTER, transport=server.transport()
    )


def test_load_adapter_is_idempotent() -> None:
    loaded: set[str] = set()
    server = _adapter_server(loaded)
    client = _adapter_client(server)
    assert client.load_adapter() is True
    assert client.load_adapter() is False  # already there: another worker, or a reload of the same version
    assert server.paths == ["/v1/load_lora_adapter"] * 2
    assert server.requests[0] == {"lora_name": "v2", "lora_path": str(ADAPTER)}
    assert loaded == {"v2"}


def test_an_adapter_the_server_lost_is_loaded_and_asked_again() -> None:
    loaded: set[str] = set()  # a restarted server: runtime-loaded adapters are gone
    server = _adapter_server(loaded)
    response = _adapter_client(server).complete(["a"], max_tokens=1)
    assert len(response.choices) == 1
    assert server.paths == ["/v1/completions", "/v1/load_lora_adapter", "/v1/completions"]
    response = _adapter_client(server).complete(["b"], max_tokens=1)
    assert server.paths[3:] == ["/v1/completions"]  # loaded once, then served


def test_a_whole_model_missing_is_not_loaded() -> None:
    server = _adapter_server(set())
    client = VLLMClient(SETTINGS, transport=server.transport())
    with pytest.raises(ModelUnavailable, match="HTTP 404"):
        client.complete(["a"], max_tokens=1)
    assert server.paths == ["/v1/completions"]
    with pytest.raises(ValueError, match="not an adapter"):
        client.load_adapter()


def test_a_server_without_runtime_loading_says_so() -> None:
    server = MockServer(lambda request, body: httpx.Response(404, json={"detail": "Not Found"}))
    with pytest.raises(ModelUnavailable, match="does not load adapters at run time"):
        _adapter_client(server).load_adapter()


def test_an_adapter_the_server_cannot_read_is_refused() -> None:
    message = "Loading lora v2 failed: No adapter found for /artefacts/helpdesk/policy-llm-v2"
    server = MockServer(lambda request, body: httpx.Response(400, json={"error": {"message": message}}))
    with pytest.raises(ModelUnavailable, match="refused with HTTP 400: Loading lora v2 failed"):
        _adapter_client(server).load_adapter()
