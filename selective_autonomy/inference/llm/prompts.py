"""Prompt and target text of the LLM policy and critic: one format for training and serving.

A policy prompt is the rendered view of the screen (:func:`render_view`, PII masked) in a two-turn
chat layout; its target is the action as compact JSON with keys in the order the action grammar
(and so the constrained decoder) produces them. A critic prompt adds the proposed action; its
target is ``accept`` or ``reject``. The tokenizer's chat template renders the same text, so the
chat endpoint sees what training saw.

Prompts are fitted to the model's context: when a view is too long in model tokens, it is rendered
again under a smaller :class:`ViewBudget` (which sheds old chat turns and actions first).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from selective_autonomy.schemas.event_parts import Action
from selective_autonomy.schemas.events import UIStateChanged
from selective_autonomy.schemas.process import ProcessSchema
from selective_autonomy.schemas.view import DEFAULT_BUDGET, ViewBudget, render_view

DEFAULT_MAX_NEW_TOKENS = 96
"""Tokens kept for the answer (one action's JSON) by default: serving, training and the policy alike."""

PROMPT_FORMAT = "selauto-llm-v1"
"""Recorded in artefacts; a model is only served with the prompt format it was trained on."""

USER = "<|user|>"
ASSISTANT = "<|assistant|>"
ACCEPT = "accept"
REJECT = "reject"
CRITIC_CHOICES = (ACCEPT, REJECT)

POLICY_INSTRUCTION = "Next UI action on this screen:"
CRITIC_INSTRUCTION = "Would an operator accept this action on this screen?"

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\n' + message['content'] + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)
"""Jinja chat template equivalent to :func:`chat_prompt` (BOS comes from the tokenizer itself)."""

TokenCounter = Callable[[str], int]
Label = bool | Literal["accept", "reject"]

_MAX_FIT_ROUNDS = 8


def chat_prompt(user: str) -> str:
    """One user turn followed by the assistant's turn marker, as the chat template renders it."""
    return f"{USER}\n{user}\n{ASSISTANT}\n"


def policy_prompt(view_text: str) -> str:
    return chat_prompt(f"{POLICY_INSTRUCTION}\n{view_text}")


def action_text(action: Action, schema: ProcessSchema) -> str:
    """Compact JSON of ``action``: arguments in the schema's order, which the constrained decoder follows."""
    spec = schema.action(action.action_type)
    order = [arg.name for arg in spec.arguments] if spec is not None else []
    arguments = {name: action.arguments[name] for name in order if name in action.arguments}
    arguments.update({name: value for name, value in sorted(action.arguments.items()) if name not in arguments})
    payload = {"action_type": action.action_type, "arguments": arguments}
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def critic_prompt(view_text: str, proposed: str) -> str:
    return chat_prompt(f"{CRITIC_INSTRUCTION}\nscreen: {view_text}\naction: {proposed}")


def critic_target(label: Label) -> str:
    if isinstance(label, bool):
        return ACCEPT if label else REJECT
    if label not in CRITIC_CHOICES:
        raise ValueError(f"critic label must be True/False, {ACCEPT!r} or {REJECT!r}, got {label!r}")
    return label


class PromptBuilder:
    """Builds prompts for one process schema, fitted to ``max_prompt_tokens`` when a counter is given.

    :param count_tokens: model tokens of a prompt (special tokens included); default None (no fitting).
    :param max_prompt_tokens: longest prompt allowed; default None (no limit).
    :param budget: the view budget to start from; default :data:`DEFAULT_BUDGET`.
    """

    def __init__(
        self,
        schema: ProcessSchema,
        *,
        count_tokens: TokenCounter | None = None,
        max_prompt_tokens: int | None = None,
        budget: ViewBudget = DEFAULT_BUDGET,
    ) -> None:
        self.schema = schema
        self.count_tokens = count_tokens
        self.max_prompt_tokens = max_prompt_tokens
        self.budget = budget

    def policy(self, event: UIStateChanged) -> str | None:
        """The policy prompt of ``event``, or None when even the smallest view does not fit."""
        return self._fit(event, policy_prompt)

    def critic(self, event: UIStateChanged, action: Action) -> str | None:
        """The critic prompt of ``event`` and ``action``, or None when it does not fit."""
        proposed = action_text(action, self.schema)
        return self._fit(event, lambda view: critic_prompt(view, proposed))

    def _fit(self, event: UIStateChanged, make: Callable[[str], str]) -> str | None:
        budget = self.budget
        for _ in range(_MAX_FIT_ROUNDS):
            prompt = make(render_view(event, self.schema, budget).text)
            if self.count_tokens is None or self.max_prompt_tokens is None:
                return prompt
            used = self.count_tokens(prompt)
            if used <= self.max_prompt_tokens:
                return prompt
            if budget.max_tokens <= 1:
                return None
            # Shrink the view in proportion to the overshoot, by at least one budget token.
            smaller = min(budget.max_tokens - 1, int(budget.max_tokens * self.max_prompt_tokens / used * 0.9))
            budget = budget.model_copy(update={"max_tokens": max(1, smaller)})
        return None


TOKENIZER_FILE = "tokenizer.json"


class TokenCount:
    """Counts a prompt's tokens (special tokens included) from a saved ``tokenizer.json``.

    Uses the ``tokenizers`` library alone, which loads in milliseconds (no transformers or torch),
    so a worker can fit prompts to the served model's context.
    """

    def __init__(self, directory: Path) -> None:
        from tokenizers import Tokenizer

        self._tokenizer = Tokenizer.from_file(str(directory / TOKENIZER_FILE))

    def __call__(self, text: str) -> int:
        return len(self._tokenizer.encode(text).ids)
