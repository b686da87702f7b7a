"""What an action the platform did not apply turns into: ``ActionFailed`` for the record, and an
``OperatorDeferral`` (reason ``execution_failed``) that puts the session in front of an operator."""

from __future__ import annotations

import hashlib

from selective_autonomy.edges.executor.service import Execution, ExecutionStatus
from selective_autonomy.schemas.event_parts import DeferralReason, Stage, UIState
from selective_autonomy.schemas.events import ActionFailed, OperatorDeferral

MAX_EXCERPT_CHARS = 2000


def failure_deferral_id(key: str) -> str:
    """Deterministic id of the hand-over of one failed claim: a repeated hand-over is recognisably the same."""
    return hashlib.sha256(f"execution_failed\x1f{key}".encode()).hexdigest()[:32]


def action_failed(execution: Execution) -> ActionFailed:
    action = execution.action
    return ActionFailed(
        action_id=action.action_id,
        event_id=action.event_id,
        session_id=action.session_id,
        process_id=action.process_id,
        business_cluster=action.business_cluster,
        state_version=action.state_version,
        action=action.action,
        status_code=execution.status_code,
        response_excerpt=execution.excerpt[:MAX_EXCERPT_CHARS],
        error=execution.error,
        attempts=execution.attempts,
    )


def failure_deferral(execution: Execution) -> OperatorDeferral:
    """The deferral carrying the failed action as its suggestion (the console shows what did not happen).

    The UI state is empty: the executor never sees the screen. The platform's next ``UIStateChanged``
    for the session brings it back, and the decide agent resumes from there once the operator acted.
    """
    action = execution.action
    code = f" (HTTP {execution.status_code})" if execution.status_code is not None else ""
    if execution.status is ExecutionStatus.unknown:
        headline = "may or may not have been applied"
    else:
        headline = f"was not applied{code}"
    detail = f"{action.action.action_type} {headline}: {execution.error}"
    if execution.excerpt:
        detail += f" | platform said: {execution.excerpt[:300]}"
    return OperatorDeferral(
        deferral_id=failure_deferral_id(execution.key),
        event_id=action.event_id,
        session_id=action.session_id,
        process_id=action.process_id,
        business_cluster=action.business_cluster,
        state_version=action.state_version,
        ui_state=UIState(),
        suggestion=action.action,
        suggestion_action_id=action.action_id,
        tier=action.tier,
        policy_probability=action.policy_probability,
        critic_score=action.critic_score,
        threshold=action.threshold,
        reason=DeferralReason.execution_failed,
        # Handed over as a selective-stage deferral (labelled because the step did not go through),
        # whichever stage decided it: the executor does not know, and this keeps such steps out of
        # the unbiased evidence.
        stage=Stage.selective,
        detail=detail,
        policy_version=action.policy_version,
        critic_version=action.critic_version,
    )
