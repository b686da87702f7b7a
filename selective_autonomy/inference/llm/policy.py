"""The LLM policy: a vLLM-served model proposes schema-valid actions for rendered views.

One completions request per batch: every event's prompt, ``n`` choices each, the process's action
grammar as the JSON-Schema constraint (``structured_outputs.json``) and per-token logprobs.

Candidates and probabilities: with ``top_k == 1`` the request is greedy (one choice per event);
otherwise it samples ``samples`` choices (default ``top_k``) at ``temperature`` with a fixed seed.
Each distinct action is one candidate; its probability is the probability of its generated token
sequence, ``exp(sum of token logprobs)``, EOS included. vLLM computes those logprobs after the
grammar mask, so it is the model's probability among schema-valid outputs: in (0, 1], and distinct
candidates sum to at most 1. Candidates come best first. Every candidate is parsed and checked with
:func:`validate_action`; a choice that fails (cut at ``max_tokens``, bad JSON, invalid action) is
dropped, never repaired, so an event may get an empty proposal (the gate defers it as
``model_unavailable``). A failed request raises :class:`ModelUnavailable` for the whole batch.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Self

import httpx
from pydantic import ValidationError

from selective_autonomy.config import DEFAULT_TOP_K
from selective_autonomy.inference.artefact import ArtefactError, ArtefactMeta, read_meta
from selective_autonomy.inference.llm.client import CompletionChoice, VLLMClient
from selective_autonomy.inference.llm.prompts import (
    DEFAULT_MAX_NEW_TOKENS,
    PROMPT_FORMAT,
    TOKENIZER_FILE,
    PromptBuilder,
    TokenCount,
)
from selective_autonomy.inference.llm.settings import LLMClientSettings
from selective_autonomy.inference.protocol import Candidate, Proposal
from selective_autonomy.schemas.event_parts import Action
from selective_autonomy.schemas.events import UIStateChanged
from selective_autonomy.schemas.grammar import action_json_schema, validate_action
from selective_autonomy.schemas.process import ProcessSchema

POLICY_KIND = "policy-llm"


def parse_action(text: str, schema: ProcessSchema) -> Action | None:
    """The action in ``text``, or None unless it is one JSON object valid under ``schema``."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    try:
        action = Action.model_validate(data)
    except ValidationError:
        return None
    return None if validate_action(schema, action) else action


class ServedModel:
    """What the LLM policy and the LLM critic share: a model asked through the vLLM server that serves
    an artefact of kind :attr:`KIND`, with the prompt builder the artefact was trained with.

    :param schema: the process schema.
    :param client: the server client (its ``model`` is the served model name).
    :param version: the artefact version reported with answers.
    :param builder: prompt builder; default one without prompt fitting.
    """

    KIND: ClassVar[str]
    """The artefact kind :meth:`load` accepts."""

    def __init__(
        self, schema: ProcessSchema, client: VLLMClient, *, version: str, builder: PromptBuilder | None = None
    ) -> None:
        self.schema = schema
        self.client = client
        self._version = version
        self.builder = builder or PromptBuilder(schema)

    @property
    def version(self) -> str:
        return self._version

    @classmethod
    def load(
        cls,
        directory: Path,
        schema: ProcessSchema,
        settings: LLMClientSettings,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> Self:
        """The model for the :attr:`KIND` artefact in ``directory``, served as ``settings`` says.

        Reads ``artefact.json`` (refused for another schema or kind) and ``tokenizer.json`` (to fit
        prompts to the served context); loads no weights and contacts no server. A LoRA adapter
        artefact gets a client that loads it into the server when asked or when the server lacks it.
        """
        meta = read_meta(directory, schema, kind_prefix=cls.KIND)
        builder = builder_for(directory, schema, meta)  # before the client: a refused artefact opens none
        model = cls(schema, served_client(directory, meta, settings, transport), version=meta.version, builder=builder)
        model._configure(meta)
        return model

    def _configure(self, meta: ArtefactMeta) -> None:
        """Take what else the model needs from the artefact's ``meta`` (:meth:`load` calls it); nothing here."""


class LLMPolicy(ServedModel):
    """Policy backed by an OpenAI-compatible server (vLLM) serving a ``policy-llm`` artefact.

    :param schema: the process schema; its action grammar constrains decoding.
    :param client: the server client (its ``model`` is the served model name).
    :param version: the artefact version reported in proposals.
    :param builder: prompt builder; default one without prompt fitting.
    :param max_new_tokens: token limit of one action; default 96.
    :param samples: choices sampled per event when ``top_k > 1``; default None (= ``top_k``).
    :param temperature: sampling temperature when ``top_k > 1``; default 1.0 (the model's own distribution).
    :param seed: sampling seed, so a replay proposes the same candidates; default 0.
    """

    KIND = POLICY_KIND

    def __init__(
        self,
        schema: ProcessSchema,
        client: VLLMClient,
        *,
        version: str,
        builder: PromptBuilder | None = None,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        samples: int | None = None,
        temperature: float = 1.0,
        seed: int | None = 0,
    ) -> None:
        super().__init__(schema, client, version=version, builder=builder)
        self.max_new_tokens = max_new_tokens
        self.samples = samples
        self.temperature = temperature
        self.seed = seed
        self._json_schema: dict[str, Any] = action_json_schema(schema)

    def propose(self, events: Sequence[UIStateChanged], top_k: int = DEFAULT_TOP_K) -> list[Proposal]:
        if top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {top_k}")
        prompts = [self.builder.policy(event) for event in events]
        asked = [i for i, prompt in enumerate(prompts) if prompt is not None]
        candidates: list[list[Candidate]] = [[] for _ in events]
        if asked:
            greedy = top_k == 1
            n = 1 if greedy else (self.samples or top_k)
            response = self.client.complete(
                [prompts[i] or "" for i in asked],
                max_tokens=self.max_new_tokens,
                n=n,
                temperature=0.0 if greedy else self.temperature,
                logprobs=0,
                structured_outputs={"json": self._json_schema},
                seed=None if greedy else self.seed,
            )
            for i, choices in zip(asked, response.by_prompt(len(asked), n), strict=True):
                candidates[i] = self._rank(choices)[:top_k]
        return [Proposal(candidates=c, policy_version=self.version) for c in candidates]

    def _rank(self, choices: Sequence[CompletionChoice]) -> list[Candidate]:
        best: dict[str, Candidate] = {}
        for choice in choices:
            if choice.finish_reason == "length" or choice.logprobs is None:
                continue
            action = parse_action(choice.text, self.schema)
            if action is None:
                continue
            logprob = choice.logprobs.sequence_logprob()
            if not math.isfinite(logprob):
                continue
            probability = min(1.0, math.exp(logprob))
            if probability <= 0.0:
                continue
            key = action.canonical_json()
            if key not in best or best[key].probability < probability:
                best[key] = Candidate(action=action, probability=probability)
        return sorted(best.values(), key=lambda c: (-c.probability, c.action.canonical_json()))

    def _configure(self, meta: ArtefactMeta) -> None:
        # An action may be as long as the artefact was trained to write.
        self.max_new_tokens = int(meta.params.get("max_new_tokens", DEFAULT_MAX_NEW_TOKENS))


def served_client(
    directory: Path, meta: ArtefactMeta, settings: LLMClientSettings, transport: httpx.BaseTransport | None
) -> VLLMClient:
    """The client of the artefact in ``directory``, served under its version: as an adapter it
    loads into the server when it is a LoRA adapter saved unmerged, as a whole model otherwise."""
    return VLLMClient(settings, model=meta.version, adapter=adapter_dir(directory, meta), transport=transport)


def adapter_dir(directory: Path, meta: ArtefactMeta) -> Path | None:
    """The directory's absolute path when the artefact is a LoRA adapter saved unmerged (served on
    its base by a LoRA-enabled server), else None (a whole model, served as itself)."""
    lora = meta.params.get("lora")
    if isinstance(lora, dict) and lora.get("merged") is False:
        return directory.resolve()
    return None


def builder_for(directory: Path, schema: ProcessSchema, meta: ArtefactMeta) -> PromptBuilder:
    """The prompt builder an artefact was trained with: same format, fitted to the same prompt length."""
    found = meta.params.get("prompt_format")
    if found != PROMPT_FORMAT:
        raise ArtefactError(f"{directory} was trained with prompt format {found!r}, this code writes {PROMPT_FORMAT!r}")
    max_prompt = meta.params.get("max_prompt_tokens")
    if (directory / TOKENIZER_FILE).is_file() and max_prompt is not None:
        return PromptBuilder(schema, count_tokens=TokenCount(directory), max_prompt_tokens=int(max_prompt))
    return PromptBuilder(schema)
