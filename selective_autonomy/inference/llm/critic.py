"""The LLM critic: P(an operator accepts this action on this screen) from a vLLM-served model.

One greedy completions request per batch, constrained to ``structured_outputs.choice =
["accept", "reject"]`` with the first position's top logprobs. Those logprobs come after the
grammar mask, so the allowed first tokens are exactly the non-empty prefixes of the two words
(``a``, ``ac``, ... ``accept``; ``r``, ``re``, ... ``reject``) and the first token decides the
answer. P(accept) is the probability mass on accept-prefixes over the mass on both, with vLLM's
``-9999.0`` filler entries ignored. An item whose answer carries no usable logprobs, or whose
prompt cannot fit the model's context, makes the whole call raise :class:`ModelUnavailable`; no
score is ever guessed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from selective_autonomy.inference.llm.client import FILLER_LOGPROB, CompletionChoice
from selective_autonomy.inference.llm.policy import ServedModel
from selective_autonomy.inference.llm.prompts import ACCEPT, CRITIC_CHOICES, REJECT
from selective_autonomy.inference.protocol import CriticInput, ModelUnavailable

CRITIC_KIND = "critic-llm"
TOP_LOGPROBS = 2 * max(len(ACCEPT), len(REJECT))
"""Enough to see every allowed first token: each word has at most one prefix token per length."""


def accept_probability(choice: CompletionChoice) -> float:
    """P(accept) normalised over accept and reject, from the first generated position's top logprobs.

    :raises ModelUnavailable: when that position has no logprobs for either word.
    """
    logprobs = choice.logprobs
    top = logprobs.top_logprobs if logprobs is not None else None
    first = top[0] if top else None
    if not first:
        raise ModelUnavailable(f"the critic's answer {choice.text!r} came without top logprobs")
    mass = {ACCEPT: 0.0, REJECT: 0.0}
    for token, logprob in first.items():
        if not token or not math.isfinite(logprob) or logprob <= FILLER_LOGPROB:
            continue
        for word in CRITIC_CHOICES:
            if word.startswith(token):
                mass[word] += math.exp(logprob)
    total = mass[ACCEPT] + mass[REJECT]
    if total <= 0.0:
        raise ModelUnavailable(f"no accept/reject probability in the critic's logprobs {sorted(first)[:8]}")
    return min(1.0, max(0.0, mass[ACCEPT] / total))


class LLMCritic(ServedModel):
    """Critic backed by an OpenAI-compatible server (vLLM) serving a ``critic-llm`` artefact.

    :param schema: the process schema (views and action text follow it).
    :param client: the server client (its ``model`` is the served model name).
    :param version: the artefact version reported with scores.
    :param builder: prompt builder; default one without prompt fitting.
    """

    KIND = CRITIC_KIND

    def score(self, items: Sequence[CriticInput]) -> list[float]:
        if not items:
            return []
        prompts: list[str] = []
        for item in items:
            prompt = self.builder.critic(item.event, item.action)
            if prompt is None:
                raise ModelUnavailable(f"the critic prompt for event {item.event.event_id} does not fit the model")
            prompts.append(prompt)
        response = self.client.complete(
            prompts,
            max_tokens=max(len(ACCEPT), len(REJECT)) + 1,
            temperature=0.0,
            logprobs=TOP_LOGPROBS,
            structured_outputs={"choice": list(CRITIC_CHOICES)},
        )
        return [accept_probability(choice) for (choice,) in response.by_prompt(len(prompts), 1)]
