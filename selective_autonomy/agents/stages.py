"""The stage machine of one process / business cluster: logging -> copilot -> selective, and back.

Pure: the learning loop gathers the evidence, :func:`next_stage` decides. Promotion needs a policy
in service (logging -> copilot) and then a certified threshold that executes a non-trivial share of
steps (copilot -> selective). Demotion back to copilot happens when the realised precision of
executed actions (from audits and later corrections) falls below target, when the thresholds can
no longer be certified, or when drift is detected (operators accept the policy's suggestions
clearly less often than when it was certified).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from selective_autonomy.schemas.events import Stage


class StageRules(BaseModel):
    model_config = ConfigDict(frozen=True)

    target_precision: float = Field(default=0.9, gt=0, le=1)
    min_certified_coverage: float = Field(default=0.05, ge=0, le=1, description="Promote only above this.")
    min_audits: int = Field(default=30, ge=1, description="Audited executions before precision is trusted.")
    drift_tolerance: float = Field(default=0.15, ge=0, le=1, description="Allowed drop in the acceptance rate.")
    min_drift_samples: int = Field(default=50, ge=1)


class StageEvidence(BaseModel):
    model_config = ConfigDict(frozen=True)

    policy_in_service: bool
    certified: bool = False
    certified_coverage: float = 0.0
    audited: int = 0
    rolling_precision: float | None = None
    reference_acceptance: float | None = Field(default=None, description="Acceptance rate at certification.")
    recent_acceptance: float | None = None
    recent_samples: int = 0


class StageDecision(BaseModel):
    model_config = ConfigDict(frozen=True)

    stage: Stage
    reason: str


def next_stage(current: Stage, evidence: StageEvidence, rules: StageRules) -> StageDecision | None:
    """The stage to move to and why, or None to stay."""
    if current is Stage.logging:
        if evidence.policy_in_service:
            return StageDecision(stage=Stage.copilot, reason="a policy is in service: suggest and collect feedback")
        return None
    if current is Stage.copilot:
        if evidence.certified and evidence.certified_coverage >= rules.min_certified_coverage:
            return StageDecision(
                stage=Stage.selective,
                reason=f"certified thresholds cover {evidence.certified_coverage:.1%} of steps "
                f"at precision >= {rules.target_precision:.0%}",
            )
        return None
    if (
        evidence.rolling_precision is not None
        and evidence.audited >= rules.min_audits
        and evidence.rolling_precision < rules.target_precision
    ):
        return StageDecision(
            stage=Stage.copilot,
            reason=f"realised precision {evidence.rolling_precision:.1%} over {evidence.audited} audited "
            f"executions is below {rules.target_precision:.0%}",
        )
    if not evidence.certified:
        return StageDecision(stage=Stage.copilot, reason="recalibration could not certify a threshold any more")
    if (
        evidence.reference_acceptance is not None
        and evidence.recent_acceptance is not None
        and evidence.recent_samples >= rules.min_drift_samples
        and evidence.recent_acceptance < evidence.reference_acceptance - rules.drift_tolerance
    ):
        return StageDecision(
            stage=Stage.copilot,
            reason=f"drift: acceptance fell from {evidence.reference_acceptance:.1%} "
            f"to {evidence.recent_acceptance:.1%}",
        )
    return None
