"""A small synchronous client for vLLM's OpenAI-compatible completions endpoint.

Every way of not getting a usable answer (timeout, refused connection, retries exhausted, an
error status, a body that is not a completion) becomes :class:`ModelUnavailable`, so the decide
agent defers the step with reason ``model_unavailable``; nothing here ever invents an answer.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from selective_autonomy.closing import ClosedOnExit
from selective_autonomy.inference.llm.settings import LLMClientSettings
from selective_autonomy.inference.protocol import ModelUnavailable

log = logging.getLogger(__name__)

FILLER_LOGPROB = -9999.0
"""vLLM's stand-in for ``-inf`` in top logprobs (tokens the grammar forbids); never a real value."""

_RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class CompletionLogprobs(_Wire):
    """Legacy completions logprobs: one entry per generated token."""

    tokens: list[str] = Field(default_factory=list)
    token_logprobs: list[float | None] = Field(default_factory=list)
    top_logprobs: list[dict[str, float] | None] | None = None
    text_offset: list[int] = Field(default_factory=list)

    def sequence_logprob(self) -> float:
        """Sum of the generated tokens' logprobs (fillers and missing values count as impossible)."""
        total = 0.0
        for value in self.token_logprobs:
            if value is None or not math.isfinite(value) or value <= FILLER_LOGPROB:
                return -math.inf
            total += value
        return total


class CompletionChoice(_Wire):
    index: int
    text: str
    logprobs: CompletionLogprobs | None = None
    finish_reason: str | None = None


class CompletionResponse(_Wire):
    id: str = ""
    model: str = ""
    choices: list[CompletionChoice]

    def by_prompt(self, n_prompts: int, n: int) -> list[list[CompletionChoice]]:
        """Choices grouped per prompt (vLLM numbers them ``prompt * n + sample``).

        :raises ModelUnavailable: when the server did not answer every prompt ``n`` times.
        """
        expected = n_prompts * n
        indices = sorted(choice.index for choice in self.choices)
        if indices != list(range(expected)):
            raise ModelUnavailable(
                f"expected {expected} choices numbered 0..{expected - 1}, got indices {indices[:10]}"
            )
        groups: list[list[CompletionChoice]] = [[] for _ in range(n_prompts)]
        for choice in sorted(self.choices, key=lambda c: c.index):
            groups[choice.index // n].append(choice)
        return groups


class _ModelCard(_Wire):
    id: str


class _ModelList(_Wire):
    data: list[_ModelCard]


class VLLMClient(ClosedOnExit):
    """Completions against one served model, with retries on transient failures.

    :param settings: where the server is and how patiently to wait (see :class:`LLMClientSettings`).
    :param model: served model name used when ``settings.model`` is None.
    :param adapter: the LoRA adapter directory served under that name, when the model is an adapter
        on the server's base: the client loads it into the server (vLLM's runtime LoRA loading) when
        asked to (:meth:`load_adapter`) and whenever the server answers 404 for it (a restarted
        server has forgotten adapters loaded at run time). The server must see the directory at
        this path. Default None: a model the server was started with.
    :param transport: an httpx transport to use instead of the network (tests use ``httpx.MockTransport``).
    """

    def __init__(
        self,
        settings: LLMClientSettings,
        *,
        model: str | None = None,
        adapter: Path | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        name = settings.model or model
        if not name:
            raise ValueError("no served model name: set LLMClientSettings.model or pass model=")
        self.settings = settings
        self.model = name
        self.adapter = adapter
        headers = {"Authorization": f"Bearer {settings.api_key.get_secret_value()}"} if settings.api_key else {}
        self._http = httpx.Client(
            base_url=settings.url.rstrip("/") + "/",
            timeout=httpx.Timeout(settings.timeout_s),
            headers=headers,
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def _send(self, method: str, path: str, payload: dict[str, Any] | None = None) -> httpx.Response:
        """The server's answer, after retrying timeouts, connection errors and transient statuses."""
        attempts = self.settings.max_retries + 1
        last = "no attempt made"
        for attempt in range(attempts):
            if attempt:
                time.sleep(self.settings.retry_backoff_s * 2 ** (attempt - 1))
            try:
                response = self._http.request(method, path, json=payload)
            except httpx.TimeoutException as exc:
                last = f"timed out after {self.settings.timeout_s}s ({type(exc).__name__})"
                continue
            except httpx.TransportError as exc:
                last = f"cannot reach {self.settings.url}: {type(exc).__name__}: {exc}"
                continue
            if response.status_code in _RETRY_STATUS:
                last = f"HTTP {response.status_code}: {_error_text(response)}"
                continue
            return response
        raise ModelUnavailable(f"{method} {path} failed after {attempts} attempt(s): {last}")

    def _request(self, method: str, path: str, payload: dict[str, Any] | None = None) -> Any:
        return _json_body(self._send(method, path, payload), method, path)

    def models(self) -> list[str]:
        """The served model names."""
        try:
            return [card.id for card in _ModelList.model_validate(self._request("GET", "models")).data]
        except ValidationError as exc:
            raise ModelUnavailable(
                f"GET models answered with an unexpected body: {exc.error_count()} error(s)"
            ) from exc

    def complete(
        self,
        prompts: Sequence[str],
        *,
        max_tokens: int,
        n: int = 1,
        temperature: float = 0.0,
        logprobs: int | None = None,
        structured_outputs: dict[str, Any] | None = None,
        seed: int | None = None,
    ) -> CompletionResponse:
        """The completions of all ``prompts``, asked in requests of at most
        ``settings.max_prompts_per_request`` prompts, in order; choices are numbered ``prompt * n + sample``
        over all of them, as one request would number them.

        :param max_tokens: generated tokens per choice.
        :param n: choices per prompt; default 1.
        :param temperature: 0 is greedy; default 0.
        :param logprobs: top-k logprobs per generated token (0 = only the chosen token's); default None (none).
        :param structured_outputs: vLLM constraint, e.g. ``{"json": schema}`` or ``{"choice": [...]}``.
        :param seed: sampling seed, for reproducible samples; default None.
        """
        payload: dict[str, Any] = {"model": self.model, "max_tokens": max_tokens, "n": n, "temperature": temperature}
        if logprobs is not None:
            payload["logprobs"] = logprobs
        if structured_outputs is not None:
            payload["structured_outputs"] = structured_outputs
        if seed is not None:
            payload["seed"] = seed
        size = self.settings.max_prompts_per_request
        if len(prompts) <= size:
            return self._complete_once({**payload, "prompt": list(prompts)})
        starts = range(0, len(prompts), size)
        responses = [self._complete_once({**payload, "prompt": list(prompts[i : i + size])}) for i in starts]
        choices = [
            choice.model_copy(update={"index": choice.index + start * n})
            for start, response in zip(starts, responses, strict=True)
            for choice in response.choices
        ]
        return responses[-1].model_copy(update={"choices": choices})

    def _complete_once(self, payload: dict[str, Any]) -> CompletionResponse:
        response = self._send("POST", "completions", payload)
        if response.status_code == 404 and self.adapter is not None:
            # A restarted server (or one that evicted it) no longer knows the adapter: load, ask again.
            self.load_adapter()
            response = self._send("POST", "completions", payload)
        body = _json_body(response, "POST", "completions")
        try:
            return CompletionResponse.model_validate(body)
        except ValidationError as exc:
            raise ModelUnavailable(
                f"POST completions answered with an unexpected body: {exc.errors()[0]['msg']}"
            ) from exc

    def load_adapter(self) -> bool:
        """Load this client's LoRA adapter into the server under the model name; idempotent.

        :returns: True when this call loaded it, False when the server already had it.
        :raises ModelUnavailable: the server is unreachable, refuses (runtime loading off: it answers
            404), or cannot load the directory.
        """
        if self.adapter is None:
            raise ValueError(f"{self.model} is not an adapter: no adapter directory given")
        path = "load_lora_adapter"
        response = self._send("POST", path, {"lora_name": self.model, "lora_path": str(self.adapter)})
        if response.status_code == 200:
            log.info("loaded LoRA adapter %s from %s into %s", self.model, self.adapter, self.settings.url)
            return True
        text = _error_text(response)
        if response.status_code == 400 and "already been loaded" in text:
            return False
        if response.status_code == 404:
            text = "the server does not load adapters at run time (it needs --enable-lora and "
            text += "VLLM_ALLOW_RUNTIME_LORA_UPDATING=True, as `selauto llm serve --base` starts it)"
        raise ModelUnavailable(f"POST {path} for adapter {self.model} refused with HTTP {response.status_code}: {text}")


def _json_body(response: httpx.Response, method: str, path: str) -> Any:
    if response.status_code >= 400:
        raise ModelUnavailable(f"{method} {path} refused with HTTP {response.status_code}: {_error_text(response)}")
    try:
        return response.json()
    except ValueError as exc:
        raise ModelUnavailable(f"{method} {path} answered with a body that is not JSON") from exc


def _error_text(response: httpx.Response) -> str:
    """The server's error message, short: vLLM sends ``{"error": {"message": ...}}``."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and "message" in error:
            return str(error["message"])[:300]
        if "message" in body:
            return str(body["message"])[:300]
    return str(body)[:200]
