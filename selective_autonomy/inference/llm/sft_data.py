"""Training data of the LLM policy and critic: feedback triples, and the (prompt, target) texts
built from traces and feedback. No torch: reading a critic file or building examples loads no model."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from selective_autonomy.inference.llm.prompts import Label, PromptBuilder, action_text, critic_target
from selective_autonomy.schemas.event_parts import Action
from selective_autonomy.schemas.events import UIStateChanged
from selective_autonomy.traces.format import Case

CriticTriple = tuple[UIStateChanged, Action, Label]
"""(state the operator saw, proposed action, accepted?) - True/"accept" or False/"reject"."""


class CriticRecord(BaseModel):
    """One line of a critic training file (JSONL): a state, the action proposed in it, the verdict."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event: UIStateChanged
    action: Action
    label: Literal["accept", "reject"]

    def triple(self) -> CriticTriple:
        return (self.event, self.action, self.label)


def read_critic_records(path: Path) -> list[CriticTriple]:
    """Feedback triples from a JSONL file of :class:`CriticRecord` lines (blank lines skipped)."""
    with path.open(encoding="utf-8") as lines:
        return [CriticRecord.model_validate_json(line).triple() for line in lines if line.strip()]


@dataclass(frozen=True)
class TextExample:
    prompt: str
    target: str


def policy_examples(cases: Sequence[Case], builder: PromptBuilder) -> list[TextExample]:
    """(prompt, action JSON) for every step of ``cases``; steps whose view cannot fit are skipped."""
    out = []
    for case in cases:
        for i, step in enumerate(case.steps):
            prompt = builder.policy(case.state_event(i))
            if prompt is not None:
                out.append(TextExample(prompt, action_text(step.action, builder.schema)))
    return out


def critic_text_examples(examples: Sequence[CriticTriple], builder: PromptBuilder) -> list[TextExample]:
    """(prompt with the proposed action, accept/reject) for every feedback triple that fits."""
    out = []
    for event, action, label in examples:
        prompt = builder.critic(event, action)
        if prompt is not None:
            out.append(TextExample(prompt, critic_target(label)))
    return out


def contrastive_critic_examples(cases: Sequence[Case], seed: int = 0) -> list[CriticTriple]:
    """Stand-in feedback from traces alone: the operator's action is accepted, another one rejected.

    For development before copilot feedback exists; the negative is drawn from the other actions
    seen in ``cases``, so it is always a plausible, schema-valid action.
    """
    rng = random.Random(seed)
    seen: dict[str, Action] = {}
    for case in cases:
        for step in case.steps:
            seen.setdefault(step.action.canonical_json(), step.action)
    pool = sorted(seen)
    out: list[CriticTriple] = []
    for case in cases:
        for i, step in enumerate(case.steps):
            event = case.state_event(i)
            out.append((event, step.action, True))
            others = [key for key in pool if key != step.action.canonical_json()]
            if others:
                out.append((event, seen[rng.choice(others)], False))
    return out
