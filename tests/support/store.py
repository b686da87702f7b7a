"""Builders of the store's records (proposals, deferrals, feedback) and the worker a spawned process
runs to race for a claim."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from selective_autonomy.inference.protocol import Candidate
from selective_autonomy.schemas.event_parts import Action, ActionTier, DeferralReason, Stage, UIState, Verdict
from selective_autonomy.schemas.events import CopilotFeedback, OperatorDeferral, UIStateChanged, action_id_for
from selective_autonomy.store.models import ProposalOutcome, ProposalRecord
from selective_autonomy.store.repository import FeedbackStore

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)

LOOKUP = Action(action_type="lookup_order", arguments={"order_id": "A-17"})
REFUND = Action(action_type="issue_refund", arguments={"amount": 12.5, "full": False})
ESCALATE = Action(action_type="escalate", arguments={})
CANDIDATES = [
    Candidate(action=LOOKUP, probability=0.7),
    Candidate(action=REFUND, probability=0.2),
    Candidate(action=ESCALATE, probability=0.1),
]


def state(session: str = "s1", version: int = 3, *, process: str = "returns", cluster: str = "eu") -> UIStateChanged:
    return UIStateChanged(
        event_id=f"{process}-{cluster}-{session}-{version}",
        session_id=session,
        process_id=process,
        business_cluster=cluster,
        state_version=version,
        timestamp=T0 + timedelta(seconds=version),
        ui_state=UIState(fields={"order_id": "A-17", "amount": 12.5, "vip": True, "note": None}),
        last_action=ESCALATE if version else None,
    )


def deferral(event: UIStateChanged, suggestion: Action | None = LOOKUP, **changes: Any) -> OperatorDeferral:
    fields: dict[str, Any] = {
        "event_id": event.event_id,
        "session_id": event.session_id,
        "process_id": event.process_id,
        "business_cluster": event.business_cluster,
        "state_version": event.state_version,
        "ui_state": event.ui_state,
        "suggestion": suggestion,
        "suggestion_action_id": None
        if suggestion is None
        else action_id_for(event.session_id, event.state_version, suggestion),
        "tier": ActionTier.auto if suggestion is not None else None,
        "policy_probability": 0.7,
        "critic_score": 0.4,
        "threshold": 0.8,
        "reason": DeferralReason.below_threshold,
        "policy_version": "policy-1",
        "critic_version": "critic-1",
        "deferred_at": T0 + timedelta(seconds=event.state_version, milliseconds=5),
        "state_at": event.timestamp,
        "stage": Stage.selective,
    }
    return OperatorDeferral(**{**fields, **changes})


def proposal_for(event: UIStateChanged, suggestion: Action | None = LOOKUP, **changes: Any) -> ProposalRecord:
    # The record keeps the full state (last action included), as the tests' evidence reads it; a
    # deferral rebuilds only what it carries.
    record = ProposalRecord.for_deferral(deferral(event, suggestion, **changes), candidates=CANDIDATES)
    return record.model_copy(update={"event": event})


def executed_proposal(event: UIStateChanged, action: Action = LOOKUP) -> ProposalRecord:
    action_id = action_id_for(event.session_id, event.state_version, action)
    return ProposalRecord(
        proposal_id=action_id,
        session_id=event.session_id,
        process_id=event.process_id,
        business_cluster=event.business_cluster,
        state_version=event.state_version,
        event=event,
        suggestion=action,
        suggestion_action_id=action_id,
        tier=ActionTier.auto,
        candidates=list(CANDIDATES),
        policy_probability=0.9,
        critic_score=0.95,
        threshold=0.8,
        policy_version="policy-1",
        critic_version="critic-1",
        stage=Stage.selective,
        outcome=ProposalOutcome.executed,
        created_at=T0 + timedelta(seconds=event.state_version),
    )


def answer(
    proposal: ProposalRecord | None,
    verdict: Verdict,
    *,
    operator_action: Action | None = None,
    given_at: datetime | None = None,
    event: UIStateChanged | None = None,
    **changes: Any,
) -> CopilotFeedback:
    """The operator's feedback on a proposal (or, with ``proposal=None``, on an unrecorded deferral)."""
    source = event or (proposal.event if proposal else state())
    if verdict is not Verdict.accepted and operator_action is None:
        operator_action = REFUND
    fields: dict[str, Any] = {
        "deferral_id": proposal.proposal_id if proposal else "never-recorded",
        "session_id": source.session_id,
        "process_id": source.process_id,
        "business_cluster": source.business_cluster,
        "state_version": source.state_version,
        "suggestion": proposal.suggestion if proposal else LOOKUP,
        "suggestion_action_id": proposal.suggestion_action_id if proposal else None,
        "verdict": verdict,
        "operator_action": operator_action,
        "operator_id": "op-7",
        "latency_ms": 4200,
        "policy_probability": 0.7,
        "critic_score": 0.4,
        "policy_version": "policy-1",
        "critic_version": "critic-1",
        "given_at": given_at or T0 + timedelta(minutes=1),
    }
    return CopilotFeedback(**{**fields, **changes})


def claim_in_process(url: str, action_id: str, barrier: Any, results: Any) -> None:
    """Runs in a spawned process: open the store, wait for every racer, claim, report the outcome."""
    store = FeedbackStore.open(url, migrate=False)
    try:
        barrier.wait(timeout=60)
        results.put(store.claim_action(action_id, "s1", "issue_refund"))
    finally:
        store.close()
