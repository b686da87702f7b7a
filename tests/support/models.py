"""Fixed policy and critic, and the :class:`ProcessModels` of :data:`tests.factories.BILLING` served by them."""

from __future__ import annotations

from collections.abc import Sequence

from selective_autonomy.inference.protocol import Candidate, CriticInput, ModelUnavailable, Proposal
from selective_autonomy.inference.registry import ProcessModels, ServicePointer
from selective_autonomy.inference.thresholds import Thresholds
from selective_autonomy.schemas.event_parts import Action, ActionTier, Stage
from selective_autonomy.schemas.events import UIStateChanged
from tests.factories import BILLING


class FixedPolicy:
    """Always proposes the same ranked actions; or raises, to act as an unreachable model."""

    version = "fixed-1"

    def __init__(self, candidates: list[tuple[Action, float]], fail: bool = False) -> None:
        self.candidates = [Candidate(action=a, probability=p) for a, p in candidates]
        self.fail = fail
        self.calls = 0

    def propose(self, events: Sequence[UIStateChanged], top_k: int = 5) -> list[Proposal]:
        self.calls += 1
        if self.fail:
            raise ModelUnavailable("connection refused")
        return [Proposal(candidates=self.candidates[:top_k], policy_version=self.version) for _ in events]


class FixedCritic:
    version = "critic-1"

    def __init__(self, score: float, fail: bool = False) -> None:
        self.value = score
        self.fail = fail
        self.seen: list[CriticInput] = []

    def score(self, items: Sequence[CriticInput]) -> list[float]:
        if self.fail:
            raise TimeoutError("critic timed out")
        self.seen.extend(items)
        return [self.value for _ in items]


def models(
    action: Action,
    probability: float = 0.9,
    score: float = 0.99,
    stage: Stage = Stage.selective,
    threshold: float | None = 0.9,
    policy_fails: bool = False,
    critic_fails: bool = False,
) -> ProcessModels:
    values = {}
    if threshold is not None:
        for cluster in ("retail", "vip"):
            for tier in ActionTier:
                values[f"billing/{cluster}/{tier.value}"] = threshold
    pointer = ServicePointer(thresholds=Thresholds(values=values), default_stage=stage)
    return ProcessModels(
        schema=BILLING,
        policy=FixedPolicy([(action, probability)], fail=policy_fails),
        critic=FixedCritic(score, fail=critic_fails),
        pointer=pointer,
    )
