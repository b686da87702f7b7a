"""The gate: the one place that decides whether a proposed step runs unattended.

A pure function of the proposal, the critic's score, the process schema, the stage, the certified
thresholds and the session's state, so it is unit-tested exhaustively without Kafka. The checks
run in a fixed order and the first that fails names the deferral reason:

1. a model could not answer                  -> ``model_unavailable``
2. the stage is ``logging``                  -> record only
3. the stage is ``copilot``                  -> ``copilot_stage`` (every step is a suggestion)
4. the action violates the process schema   -> ``schema_violation``
5. the action's tier is approval_required    -> ``approval_required`` (never unattended)
6. a cluster guardrail forbids it            -> ``guardrail``
7. no threshold for the action, and its type was judged too rarely when the cluster was certified,
   or the step lies outside what the certificate was earned on          -> ``novel_situation``
8. no certified threshold, or score below it -> ``below_threshold``
9. the session belongs to the exploration holdout -> ``exploration`` (it would have run; an
   operator judges it instead, which keeps unbiased evidence coming after promotion)
10. autonomy is paused by hand for the cluster or the whole process -> ``paused``
otherwise the step is executed.

The pause is checked last, right before the one way to ``execute``: so a paused scope never runs
anything unattended, while every step that would not have run anyway keeps its own reason. That
matters to the evidence: an exploration step stays ``exploration`` (the precision monitor's random
sample of what would run, which a pause must not starve), and a ``paused`` deferral is exactly a
step that would have executed.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from selective_autonomy.inference.certificate import Certificate
from selective_autonomy.inference.protocol import Proposal
from selective_autonomy.inference.thresholds import Thresholds, key_text
from selective_autonomy.schemas.event_parts import Action, ActionTier, DeferralReason, Stage
from selective_autonomy.schemas.grammar import validate_action
from selective_autonomy.schemas.process import ProcessSchema


class GateOutcome(StrEnum):
    """What the gate does with a step: run it unattended, hand it to an operator, or only record it."""

    execute = "execute"
    defer = "defer"
    record = "record"


class SessionProgress(BaseModel):
    """What the gate needs to know about the session so far."""

    model_config = ConfigDict(frozen=True)

    autonomous_steps: int = 0


class GateDecision(BaseModel):
    model_config = ConfigDict(frozen=True)

    outcome: GateOutcome
    reason: DeferralReason | None = None
    detail: str = ""
    action: Action | None = None
    tier: ActionTier | None = None
    threshold: float | None = None


def gate(
    *,
    schema: ProcessSchema,
    business_cluster: str,
    stage: Stage,
    proposal: Proposal | None,
    critic_score: float | None,
    thresholds: Thresholds,
    progress: SessionProgress,
    model_error: str | None = None,
    certificate: Certificate | None = None,
    holdout: bool = False,
    step: int = 0,
    paused: str | None = None,
) -> GateDecision:
    """The gate's verdict on one step.

    :param paused: why autonomy is paused here (the pause's detail), or None, the default, when it is not.
    """
    top = proposal.top if proposal is not None else None
    action = top.action if top is not None else None
    spec = schema.action(action.action_type) if action is not None else None
    tier = spec.tier if spec is not None else None

    def defer(reason: DeferralReason, detail: str, threshold: float | None = None) -> GateDecision:
        return GateDecision(
            outcome=GateOutcome.defer, reason=reason, detail=detail, action=action, tier=tier, threshold=threshold
        )

    if model_error is not None or action is None:
        if stage is Stage.logging:
            return GateDecision(outcome=GateOutcome.record, detail=model_error or "no valid candidate")
        return defer(DeferralReason.model_unavailable, model_error or "the policy proposed no valid action")
    if stage is Stage.logging:
        return GateDecision(outcome=GateOutcome.record, action=action, tier=tier)
    if stage is Stage.copilot:
        return defer(DeferralReason.copilot_stage, "copilot stage: every step goes to an operator")

    violations = validate_action(schema, action)
    if violations or spec is None or tier is None:
        return defer(DeferralReason.schema_violation, "; ".join(violations) or "unknown action")
    if tier is ActionTier.approval_required:
        return defer(DeferralReason.approval_required, f"{action.action_type} always needs an operator's approval")

    cluster = schema.cluster(business_cluster)
    if cluster is None:
        return defer(DeferralReason.guardrail, f"business cluster {business_cluster!r} is not in the process schema")
    guardrails = cluster.guardrails
    if action.action_type in guardrails.blocked_actions:
        return defer(DeferralReason.guardrail, f"{action.action_type} is blocked in cluster {business_cluster}")
    if guardrails.max_autonomous_steps is not None and progress.autonomous_steps >= guardrails.max_autonomous_steps:
        return defer(
            DeferralReason.guardrail, f"{progress.autonomous_steps} unattended steps reached the cluster's limit"
        )

    threshold = thresholds.get(schema.process_id, business_cluster, tier, action.action_type)
    if certificate is not None:
        key = key_text(schema.process_id, business_cluster, tier, action.action_type)
        outside = certificate.uncovered(key, action.action_type, step)
        if outside is not None:
            return defer(DeferralReason.novel_situation, outside, threshold)
    if threshold is None:
        return defer(DeferralReason.below_threshold, f"no certified threshold for {action.action_type} here")
    if critic_score is None:
        return defer(DeferralReason.model_unavailable, "the critic gave no score", threshold)
    if critic_score < threshold:
        return defer(
            DeferralReason.below_threshold, f"critic {critic_score:.3f} < threshold {threshold:.3f}", threshold
        )
    if holdout:
        return defer(
            DeferralReason.exploration,
            f"exploration holdout: would have run (critic {critic_score:.3f} >= {threshold:.3f}); an operator judges",
            threshold,
        )
    if paused is not None:
        return defer(DeferralReason.paused, paused, threshold)
    return GateDecision(outcome=GateOutcome.execute, action=action, tier=tier, threshold=threshold)
