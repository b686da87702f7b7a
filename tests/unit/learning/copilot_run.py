"""An offline copilot stage for tests: the real decision engine proposes, a simulated operator
answers with the recorded action, and everything lands in a real (SQLite) feedback store."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from selective_autonomy.agents.decisions import DecisionEngine
from selective_autonomy.agents.feedback import proposal_of
from selective_autonomy.inference.registry import ProcessModels
from selective_autonomy.schemas.events import CopilotFeedback, OperatorDeferral, Verdict
from selective_autonomy.store.repository import FeedbackStore
from selective_autonomy.traces.format import Case


def run_copilot(models: ProcessModels, cases: Sequence[Case], store: FeedbackStore, batch: int = 256) -> int:
    """Defer every step of ``cases`` and answer each deferral; return the feedback count."""
    engine = DecisionEngine({models.schema.process_id: models})
    pairs = [(case.state_event(i), step) for case in cases for i, step in enumerate(case.steps)]
    count = 0
    for start in range(0, len(pairs), batch):
        chunk = pairs[start : start + batch]
        proposals, answers = [], []
        for decision, (_event, step) in zip(engine.decide([e for e, _ in chunk], {}), chunk, strict=True):
            deferral = decision.output()
            assert isinstance(deferral, OperatorDeferral)
            proposals.append(proposal_of(deferral))
            right = deferral.suggestion == step.action
            answers.append(
                CopilotFeedback(
                    feedback_id=f"fb-{deferral.deferral_id}",  # deterministic: the store orders ties by id
                    deferral_id=deferral.deferral_id,
                    session_id=deferral.session_id,
                    process_id=deferral.process_id,
                    business_cluster=deferral.business_cluster,
                    state_version=deferral.state_version,
                    suggestion=deferral.suggestion,
                    suggestion_action_id=deferral.suggestion_action_id,
                    verdict=Verdict.accepted if right else Verdict.corrected,
                    operator_action=None if right else step.action,
                    operator_id=step.operator_id or "operator",
                    latency_ms=1000,
                    policy_probability=deferral.policy_probability,
                    critic_score=deferral.critic_score,
                    policy_version=deferral.policy_version,
                    critic_version=deferral.critic_version,
                    given_at=step.timestamp + timedelta(seconds=1),
                )
            )
            count += 1
        store.record_proposals(proposals)
        store.record_feedbacks(answers)
    return count
