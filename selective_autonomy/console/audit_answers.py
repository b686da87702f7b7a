"""Operator answers to audits: the unattended step was right, or wrong (and what should have run).

An answer publishes one ``CopilotFeedback`` on ``copilot.feedback`` and nothing else: no
``deferral_id``, ``suggestion_action_id`` = the executed action's id, ``suggestion`` = the executed
action, verdict ``accepted`` (right) or ``corrected`` with ``operator_action`` (wrong). No
``ActionExecuted`` is sent: the step already ran. A wrong answer's action is checked against the
process's action grammar like a correction. The audit is claimed first (a second answer finds it
gone) and given back when the broker does not acknowledge the record; a retry produces the same
feedback id.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from selective_autonomy.console.answers import checked_action, feedback_id_for, same_action
from selective_autonomy.console.audits import AuditBook, PendingAudit
from selective_autonomy.console.catalog import SchemaCatalog
from selective_autonomy.console.delivery import Delivery
from selective_autonomy.console.errors import AnswerNotDelivered, AnswerRefused, AuditGone
from selective_autonomy.console.inbox import Visibility
from selective_autonomy.console.protocol import AuditAnswerResponse, AuditRightRequest, AuditWrongRequest
from selective_autonomy.schemas.event_parts import Action, Verdict
from selective_autonomy.schemas.events import CopilotFeedback

log = logging.getLogger(__name__)

AUDIT_PREFIX = "audit:"


def audit_feedback_id(action_id: str, verdict: Verdict, action: Action) -> str:
    """Deterministic, and never the id of a deferral answer: the same audit answer, retried, is one record."""
    return feedback_id_for(AUDIT_PREFIX + action_id, verdict, action)


def audit_feedback(
    audit: PendingAudit, operator_id: str, operator_action: Action | None, latency_ms: int
) -> CopilotFeedback:
    """The audit record: ``operator_action`` None means the step was right."""
    executed = audit.executed
    verdict = Verdict.accepted if operator_action is None else Verdict.corrected
    return CopilotFeedback.for_audit(
        executed,
        operator_action=operator_action,
        operator_id=operator_id,
        latency_ms=latency_ms,
        inclusion_probability=audit.inclusion_probability,
        feedback_id=audit_feedback_id(executed.action_id, verdict, operator_action or executed.action),
    )


class AuditAnswerService:
    """Turns audit answers into feedback records.

    :param delivery: shared with the deferral answers.
    :param clock: epoch seconds, for latency; default ``time.time``.
    """

    def __init__(
        self,
        audits: AuditBook,
        catalog: SchemaCatalog,
        delivery: Delivery,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.audits = audits
        self.catalog = catalog
        self.delivery = delivery
        self.clock = clock

    def right(
        self, action_id: str, operator_id: str, visibility: Visibility, body: AuditRightRequest | None = None
    ) -> AuditAnswerResponse:
        self._pending(action_id, visibility)
        return self._answer(action_id, visibility, operator_id, None)

    def wrong(
        self, action_id: str, operator_id: str, visibility: Visibility, body: AuditWrongRequest
    ) -> AuditAnswerResponse:
        audit = self._pending(action_id, visibility)
        action = checked_action(self.catalog, audit.process_id, body.action.to_action())
        if same_action(action, audit.executed.action):
            raise AnswerRefused("this action is the step that ran: answer 'right' instead")
        return self._answer(action_id, visibility, operator_id, action)

    def _pending(self, action_id: str, visibility: Visibility) -> PendingAudit:
        audit = self.audits.get(action_id, visibility)
        if audit is None:
            raise AuditGone(f"audit {action_id} is not pending: already answered, dropped, or unknown")
        return audit

    def _answer(
        self, action_id: str, visibility: Visibility, operator_id: str, operator_action: Action | None
    ) -> AuditAnswerResponse:
        claimed = self.audits.claim(action_id, visibility)
        if claimed is None:
            raise AuditGone(f"audit {action_id} was answered meanwhile")
        latency_ms = max(0, round((self.clock() - claimed.arrived_at) * 1000))
        feedback = audit_feedback(claimed, operator_id, operator_action, latency_ms)
        try:
            self.delivery.publish(
                claimed.session_id,
                claimed.headers,
                [(self.delivery.topics.copilot_feedback, feedback)],
                {
                    "selauto.session_id": claimed.session_id,
                    "selauto.state_version": claimed.state_version,
                    "selauto.verdict": feedback.verdict.value,
                    "selauto.audit": True,
                },
            )
        except Exception as exc:
            self.audits.release(claimed)
            log.warning("audit answer to %s not delivered: %s", claimed.id, exc)
            raise AnswerNotDelivered(f"the answer could not be delivered ({exc}); try again") from exc
        self.audits.complete(claimed)
        return AuditAnswerResponse(
            action_id=claimed.id,
            session_id=claimed.session_id,
            verdict=feedback.verdict,
            feedback_id=feedback.feedback_id,
            audited_action=claimed.executed.action,
            operator_action=operator_action,
            operator_id=operator_id,
            latency_ms=latency_ms,
        )
