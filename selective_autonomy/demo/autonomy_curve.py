"""Time to autonomy: certified coverage as a function of how many copilot sessions were seen.

For each prefix of the copilot feedback (first k sessions, in the order they ran), the critic is
trained on the older part of that prefix and thresholds are certified on the newer part, exactly
as the learning loop would have done at that moment. The curve answers "how long in copilot before
a new process runs selectively", in sessions and in days of the log's own traffic.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, Field

from selective_autonomy.config import LearningSettings
from selective_autonomy.inference.learning import certify, fit_critic, split_feedback
from selective_autonomy.schemas.process import ProcessSchema
from selective_autonomy.store.datasets import CriticExample


class CurvePoint(BaseModel):
    sessions: int
    examples: int
    certified_coverage: float
    certified: bool
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


def autonomy_curve(
    schema: ProcessSchema,
    examples: Sequence[CriticExample],
    checkpoints: Sequence[int],
    config: LearningSettings,
    sessions_per_day: float | None = None,
) -> AutonomyCurve:
    order: list[str] = []
    for example in examples:
        if example.event.session_id not in order:
            order.append(example.event.session_id)
    rank = {session: i for i, session in enumerate(order)}
    points = []
    for k in sorted({min(k, len(order)) for k in checkpoints if k > 0}):
        seen = [e for e in examples if rank[e.event.session_id] < k]
        parts = split_feedback(seen, config)
        coverage = 0.0
        certified = False
        if len(parts.train) >= 20 and parts.holdout and len(parts.calibration) >= config.min_calibration_samples:
            report = certify(fit_critic(schema, parts), parts.calibration, config)
            coverage = report.certified_coverage()
            certified = any(r.threshold is not None for r in report.results)
        points.append(
            CurvePoint(
                sessions=k,
                examples=len(seen),
                certified_coverage=coverage,
                certified=certified,
                days_of_traffic=k / sessions_per_day if sessions_per_day else None,
            )
        )
    return AutonomyCurve(
        target_precision=config.target_precision,
        confidence=config.confidence,
        sessions_per_day=sessions_per_day,
        points=points,
    )
