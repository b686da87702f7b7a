"""What a policy and a critic are, as far as the runtime is concerned (no torch here).

A policy ranks schema-valid candidate actions for a batch of sessions; a critic estimates, for a
proposed action, the probability that an operator would have accepted it. Embedded torch models,
the n-gram baseline and vLLM-served LLMs all implement these two protocols, so the decide agent
never knows which one it is using.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from selective_autonomy.config import DEFAULT_TOP_K
from selective_autonomy.errors import SelautoError
from selective_autonomy.schemas.event_parts import Action, ActionTier, RankedAction
from selective_autonomy.schemas.events import UIStateChanged


class ModelUnavailable(SelautoError):
    """The model could not answer (timeout, server down, bad answer): the step is deferred."""


# A policy's candidate is the contract's ranked action: one type travels from the policy through the
# deferral to the feedback store, so the store needs nothing from this package.
Candidate = RankedAction


class Proposal(BaseModel):
    """Ranked candidates for one session state, best first; every one is valid under the schema."""

    model_config = ConfigDict(frozen=True)

    candidates: list[Candidate]
    policy_version: str

    @property
    def top(self) -> Candidate | None:
        return self.candidates[0] if self.candidates else None


class PolicySignals(BaseModel):
    """The policy's own confidence signals, used by the critic and by the confidence baseline."""

    model_config = ConfigDict(frozen=True)

    top1_probability: float = 0.0
    margin: float = 0.0
    entropy: float = 0.0
    rank: int = Field(default=0, description="Rank of the scored action among the candidates (0 = top).")
    probability: float = Field(default=0.0, description="The policy's probability of the scored action.")

    @classmethod
    def of(cls, proposal: Proposal, rank: int) -> PolicySignals:
        probs = [c.probability for c in proposal.candidates]
        if not probs:
            return cls()
        top1 = probs[0]
        second = probs[1] if len(probs) > 1 else 0.0
        entropy = -sum(p * math.log(p) for p in probs if p > 0.0)
        probability = probs[rank] if rank < len(probs) else 0.0
        return cls(top1_probability=top1, margin=top1 - second, entropy=entropy, rank=rank, probability=probability)


class CriticInput(BaseModel):
    """One (state, action) pair to score, with the context the critic may use."""

    model_config = ConfigDict(frozen=True)

    event: UIStateChanged
    action: Action
    tier: ActionTier
    signals: PolicySignals


class EndorsedExample(Protocol):
    """An action an operator endorsed in a state: the accepted suggestion or their own correction.
    What a policy learns from feedback (``updated_with``)."""

    @property
    def event(self) -> UIStateChanged: ...

    @property
    def action(self) -> Action: ...


@runtime_checkable
class Policy(Protocol):
    @property
    def version(self) -> str: ...

    def propose(self, events: Sequence[UIStateChanged], top_k: int = DEFAULT_TOP_K) -> list[Proposal]:
        """One proposal per event, in order. Raises :class:`ModelUnavailable` when it cannot answer."""
        ...


@runtime_checkable
class Critic(Protocol):
    @property
    def version(self) -> str: ...

    def score(self, items: Sequence[CriticInput]) -> list[float]:
        """P(an operator accepts) for each item, in order, each in [0, 1]."""
        ...


def computes_locally(model: Policy | Critic) -> bool:
    """Whether a model's calls compute in this process and wait on nothing (no server, no lock held
    by another thread), so they end in a few milliseconds and may run on the event loop. A model says
    so with a true ``computes_locally`` attribute; one that does not say is run off the loop, under
    the model deadline, like a model that calls a server."""
    return bool(getattr(model, "computes_locally", False))


class PolicyConfidenceCritic:
    """The baseline critic: the policy's own probability of the action.

    It is what selective execution looks like without a learned critic, and the reference the
    learned critic is compared against at equal recall.
    """

    version = "policy-confidence"
    computes_locally = True

    def score(self, items: Sequence[CriticInput]) -> list[float]:
        return [item.signals.probability for item in items]
