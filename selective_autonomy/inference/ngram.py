"""The backoff n-gram baseline: next action from the last few actions, nothing else.

Witten-Bell interpolation from the longest context down to the unigram distribution, so every
action seen in training gets a probability and unseen contexts fall back smoothly. Actions are
whole canonical actions (type and arguments), so what it proposes is always something operators
actually did; anything the process schema's grammar rejects is dropped before ranking.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import ClassVar

from selective_autonomy.config import DEFAULT_TOP_K
from selective_autonomy.inference.artefact import ArtefactMeta, read_meta, write_meta
from selective_autonomy.inference.protocol import Candidate, EndorsedExample, Proposal
from selective_autonomy.schemas.event_parts import Action
from selective_autonomy.schemas.events import UIStateChanged
from selective_autonomy.schemas.grammar import is_valid_action
from selective_autonomy.schemas.process import ProcessSchema
from selective_autonomy.traces.format import Case

WEIGHTS_FILE = "ngram.json"
# Pads the history so that "the case just started" is a context of its own.
START = "<s>"
KIND = "policy-ngram"

Context = tuple[str, ...]


def _token(action: Action) -> str:
    return action.canonical_json()


def history_tokens(event: UIStateChanged) -> list[str]:
    return [_token(a) for a in event.ui_state.recent_actions]


class NGramPolicy:
    """Interpolated backoff n-gram over canonical actions."""

    computes_locally: ClassVar[bool] = True
    """Torch or counting in this process: a call ends in milliseconds (see ``protocol.computes_locally``)."""

    def __init__(self, schema: ProcessSchema, order: int = 3, meta: ArtefactMeta | None = None) -> None:
        self.schema = schema
        self.order = order
        self.counts: dict[Context, Counter[str]] = defaultdict(Counter)
        self.meta = meta
        self._actions: dict[str, Action] = {}

    @property
    def version(self) -> str:
        return self.meta.version if self.meta else f"{KIND}-untrained"

    def _padded(self, history: Sequence[str]) -> list[str]:
        return [START] * (self.order - 1) + list(history)

    def fit_pairs(self, pairs: Iterable[tuple[Sequence[str], Action]]) -> NGramPolicy:
        for raw_history, action in pairs:
            history = self._padded(raw_history)
            token = _token(action)
            self._actions.setdefault(token, action)
            for k in range(self.order):
                if k > len(history):
                    break
                context = tuple(history[len(history) - k :]) if k else ()
                self.counts[context][token] += 1
        return self

    def fit(self, cases: Iterable[Case]) -> NGramPolicy:
        pairs = (([_token(a) for a in step.state.recent_actions], step.action) for case in cases for step in case.steps)
        return self.fit_pairs(pairs)

    def distribution(self, history: Sequence[str]) -> dict[str, float]:
        """Witten-Bell interpolated P(next | history) over every action seen in training."""
        unigram = self.counts.get((), Counter())
        total = sum(unigram.values())
        if not total:
            return {}
        probs = {token: count / total for token, count in unigram.items()}
        history = self._padded(history)
        for k in range(1, self.order):
            if k > len(history):
                break
            counts = self.counts.get(tuple(history[len(history) - k :]))
            if not counts:
                break
            seen = sum(counts.values())
            distinct = len(counts)
            lam = seen / (seen + distinct)
            probs = {token: lam * counts.get(token, 0) / seen + (1 - lam) * p for token, p in probs.items()}
        return probs

    def propose(self, events: Sequence[UIStateChanged], top_k: int = DEFAULT_TOP_K) -> list[Proposal]:
        proposals = []
        for event in events:
            ranked = sorted(self.distribution(history_tokens(event)).items(), key=lambda kv: (-kv[1], kv[0]))
            candidates: list[Candidate] = []
            for token, probability in ranked:
                action = self._actions[token]
                if is_valid_action(self.schema, action):
                    candidates.append(Candidate(action=action, probability=min(1.0, probability)))
                if len(candidates) == top_k:
                    break
            proposals.append(Proposal(candidates=candidates, policy_version=self.version))
        return proposals

    def updated_with(self, examples: Sequence[EndorsedExample]) -> NGramPolicy:
        """A new version with operator-endorsed actions from copilot feedback added to the counts."""
        updated = NGramPolicy(self.schema, order=self.order)
        updated._actions = dict(self._actions)
        for context, counter in self.counts.items():
            updated.counts[context] = Counter(counter)
        updated.fit_pairs((history_tokens(e.event), e.action) for e in examples)
        updated.meta = ArtefactMeta.of_update(
            KIND,
            self.schema,
            self.meta,
            examples=len(examples),
            digest=f"{self.version}:{len(examples)}",
            params={"order": self.order, "base_version": self.version, "feedback_examples": len(examples)},
        )
        return updated

    def save(self, directory: Path, meta: ArtefactMeta) -> None:
        write_meta(directory, meta)
        payload = {
            "order": self.order,
            "actions": {token: action.model_dump(mode="json") for token, action in self._actions.items()},
            "counts": [[list(context), dict(counter)] for context, counter in self.counts.items()],
        }
        (directory / WEIGHTS_FILE).write_text(json.dumps(payload))
        self.meta = meta

    @classmethod
    def load(cls, directory: Path, schema: ProcessSchema) -> NGramPolicy:
        meta = read_meta(directory, schema, kind_prefix=KIND)
        payload = json.loads((directory / WEIGHTS_FILE).read_text())
        policy = cls(schema, order=int(payload["order"]), meta=meta)
        policy._actions = {token: Action.model_validate(data) for token, data in payload["actions"].items()}
        for context, counter in payload["counts"]:
            policy.counts[tuple(context)] = Counter(counter)
        return policy

    def train_meta(self, cases: Sequence[Case], metrics: dict[str, float] | None = None) -> ArtefactMeta:
        examples = sum(len(c.steps) for c in cases)
        return ArtefactMeta.of_cases(
            KIND, self.schema, cases, examples=examples, metrics=metrics, params={"order": self.order}
        )
