"""Time to autonomy: certified coverage as a function of how many copilot sessions were seen.

For each prefix of the copilot feedback (first k sessions, in the order they ran), the production
plan (critic choice, certification per action type) runs on that prefix exactly as the learning
loop would have at that moment, starting from the policy alone (the policy-confidence critic is
the cold-start candidate). The curve answers "how long in copilot before a new process runs
selectively", in sessions and in days of the log's own traffic.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, Field

from selective_autonomy.config import LearningSettings
from selective_autonomy.inference.protocol import Policy, PolicyConfidenceCritic
from selective_autonomy.inference.registry import ProcessModels, ServicePointer
from selective_autonomy.learning.evidence import CriticExample
from selective_autonomy.learning.plan import plan_learning
from selective_autonomy.learning.plan_records import LearningInput
from selective_autonomy.schemas.event_parts import Stage
from selective_autonomy.schemas.process import ProcessSchema


class CurvePoint(BaseModel):
    sessions: int
    examples: int
    certified_coverage: float
    certified: bool
    promoted: bool = Field(default=False, description="The plan would move a cluster to selective.")
    critic: str = ""
    days_of_traffic: float | None = None


class AutonomyCurve(BaseModel):
    target_precision: float
    confidence: float
    sessions_per_day: float | None = Field(description="The log's traffic, to read sessions as days.")
    points: list[CurvePoint]

    def sessions_to_reach(self, coverage: float) -> int | None:
        for point in self.points:
            if point.certified_coverage >= coverage:
                return point.sessions
        return None

    def sessions_to_certificate(self) -> int | None:
        """Copilot sessions before the first promotion to selective."""
        return next((p.sessions for p in self.points if p.promoted), None)


def autonomy_curve(
    schema: ProcessSchema,
    policy: Policy,
    examples: Sequence[CriticExample],
    checkpoints: Sequence[int],
    config: LearningSettings,
    sessions_per_day: float | None = None,
) -> AutonomyCurve:
    order: list[str] = []
    seen_sessions: set[str] = set()
    for example in examples:
        if example.event.session_id not in seen_sessions:
            seen_sessions.add(example.event.session_id)
            order.append(example.event.session_id)
    rank = {session: i for i, session in enumerate(order)}
    pointer = ServicePointer(policy="in-service", default_stage=Stage.copilot)
    models = ProcessModels(schema, policy, PolicyConfidenceCritic(), pointer)
    points = []
    for k in sorted({min(k, len(order)) for k in checkpoints if k > 0}):
        seen = [e for e in examples if rank[e.event.session_id] < k]
        plan = plan_learning(LearningInput(schema=schema, pointer=pointer, models=models, examples=seen), config)
        calibration = plan.calibration
        points.append(
            CurvePoint(
                sessions=k,
                examples=len(seen),
                certified_coverage=calibration.certified_coverage() if calibration else 0.0,
                certified=bool(calibration and calibration.certified()),
                promoted=any(d.stage is Stage.selective for d in plan.decisions.values()),
                critic=plan.critic,
                days_of_traffic=k / sessions_per_day if sessions_per_day else None,
            )
        )
    return AutonomyCurve(
        target_precision=config.target_precision,
        confidence=config.confidence,
        sessions_per_day=sessions_per_day,
        points=points,
    )
