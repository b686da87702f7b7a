"""Small process schema, models and events shared by the agent unit tests."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from selective_autonomy.inference.protocol import Candidate, CriticInput, ModelUnavailable, Proposal
from selective_autonomy.inference.registry import ProcessModels, ServicePointer
from selective_autonomy.inference.thresholds import Thresholds
from selective_autonomy.schemas.event_parts import Action, ActionTier, Stage, UIState
from selective_autonomy.schemas.events import UIStateChanged
from selective_autonomy.schemas.process import (
    ActionSpec,
    ArgumentSpec,
    BusinessCluster,
    Guardrails,
    ProcessSchema,
    UIField,
    ValueType,
)

SCHEMA = ProcessSchema(
    process_id="billing",
    business_clusters=[
        BusinessCluster(id="retail"),
        BusinessCluster(id="vip", guardrails=Guardrails(blocked_actions=["close_chat"], max_autonomous_steps=2)),
    ],
    fields=[UIField(name="email", pii=True), UIField(name="plan", type=ValueType.enum, enum=["basic", "pro"])],
    controls=[
        ActionSpec(name="lookup_order", tier=ActionTier.auto, arguments=[ArgumentSpec(name="order_id")]),
        ActionSpec(name="send_invoice", tier=ActionTier.critical),
        ActionSpec(
            name="refund",
            tier=ActionTier.approval_required,
            arguments=[ArgumentSpec(name="amount", type=ValueType.number)],
        ),
    ],
)
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def event(session: str = "s1", version: int = 1, cluster: str = "retail", process: str = "billing") -> UIStateChanged:
    return UIStateChanged(
        session_id=session,
        process_id=process,
        business_cluster=cluster,
        state_version=version,
        timestamp=T0 + timedelta(seconds=version),
        ui_state=UIState(fields={"email": "ada@example.org", "plan": "pro"}),
    )


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
        schema=SCHEMA,
        policy=FixedPolicy([(action, probability)], fail=policy_fails),
        critic=FixedCritic(score, fail=critic_fails),
        pointer=pointer,
    )
