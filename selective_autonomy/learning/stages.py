"""The stage machine of one process / business cluster: logging -> copilot -> selective, and back.

Pure: the learning plan gathers the evidence, :func:`next_stage` decides. Promotion needs a policy
in service (logging -> copilot), then a certificate that executes a non-trivial share of steps
(copilot -> selective). Demotion back to copilot happens when the precision monitor alarms (the
steps that ran were accepted less often than the target, by an anytime-valid test), or when a
recertification, given enough unbiased evidence, certifies nothing any more.

There is no rule on the acceptance rate of deferred steps: after promotion only low-score steps are
deferred, so that rate falls by construction (on Helpdesk from 88% to 32-57%), and a rule on it
demoted clusters for no reason.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from selective_autonomy.config import StageRules
from selective_autonomy.learning.monitor import MonitorReading
from selective_autonomy.schemas.event_parts import Stage


class StageEvidence(BaseModel):
    model_config = ConfigDict(frozen=True)

    policy_in_service: bool
    certification_ran: bool = Field(default=False, description="This run had enough evidence to (re)certify.")
    certified: bool = False
    certified_coverage: float = 0.0
    monitor: MonitorReading | None = None


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
    monitor = evidence.monitor
    if monitor is not None and monitor.alarm:
        estimate = "" if monitor.estimate is None else f" (weighted estimate {monitor.estimate:.1%})"
        return StageDecision(
            stage=Stage.copilot,
            reason=f"precision monitor: {monitor.outcomes - monitor.accepted} of {monitor.outcomes} judged "
            f"unattended steps rejected{estimate}; the {monitor.alarm_by or 'monitor'} rejected precision >= "
            f"{rules.target_precision:.0%}",
        )
    if evidence.certification_ran and not evidence.certified:
        return StageDecision(stage=Stage.copilot, reason="recertification on recent evidence certified nothing")
    return None
