"""Operator answers: accept, correct, acceptable alternative.

Each answer is checked against the card and the process's action grammar before anything
happens, then claims the card (a second answer finds it gone), sends ``ActionExecuted``
(executed_by=operator, deterministic action id) and ``CopilotFeedback`` keyed by session with the
deferral's trace context, and waits for the broker's acknowledgement. If that fails, the card
goes back to the inbox and the caller gets :class:`AnswerNotDelivered`; a retry produces the same
ids, so consumers deduplicate a partial first attempt.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from opentelemetry import trace

from selective_autonomy.config import TopicSettings
from selective_autonomy.console.catalog import SchemaCatalog
from selective_autonomy.console.delivery import TRACE_HEADERS, Delivery
from selective_autonomy.console.errors import AnswerNotDelivered, AnswerRefused, CardGone
from selective_autonomy.console.inbox import Card, Inbox, Visibility
from selective_autonomy.console.protocol import AcceptRequest, AlternativeRequest, AnswerResponse, CorrectRequest
from selective_autonomy.console.sink import EventSink
from selective_autonomy.schemas.event_parts import Action, ActionTier, Verdict
from selective_autonomy.schemas.events import ActionExecuted, CopilotFeedback
from selective_autonomy.schemas.grammar import validate_action
from selective_autonomy.schemas.process import ProcessSchema
from selective_autonomy.webapi.errors import Violation

log = logging.getLogger(__name__)

__all__ = [
    "TRACE_HEADERS",
    "Answer",
    "AnswerService",
    "checked_action",
    "feedback_id_for",
    "same_action",
    "schema_to_check",
]


def feedback_id_for(deferral_id: str, verdict: Verdict, action: Action) -> str:
    """Deterministic: the same answer to the same deferral, retried, is the same feedback record."""
    material = f"feedback\x1f{deferral_id}\x1f{verdict.value}\x1f{action.canonical_json()}"
    return hashlib.sha256(material.encode()).hexdigest()[:32]


def schema_to_check(catalog: SchemaCatalog, process_id: str) -> ProcessSchema:
    """The process schema an operator's action is checked against; refused (422) when there is none."""
    schema = catalog.schema(process_id)
    if schema is None:
        raise AnswerRefused(f"no process schema for {process_id!r}: an operator action cannot be checked")
    return schema


def checked_action(catalog: SchemaCatalog, process_id: str, action: Action) -> Action:
    """``action`` when the process's action grammar allows it; else :class:`AnswerRefused` with its messages."""
    violations = validate_action(schema_to_check(catalog, process_id), action)
    if violations:
        raise AnswerRefused("; ".join(violations), [Violation(loc="action", msg=m) for m in violations])
    return action


def same_action(a: Action, b: Action) -> bool:
    return a.canonical_json() == b.canonical_json()


@dataclass(frozen=True)
class Answer:
    verdict: Verdict
    executed: ActionExecuted
    feedback: CopilotFeedback


class AnswerService:
    """Turns operator answers into records.

    :param clock: epoch seconds, for latency; default ``time.time``.
    :param timeout_s: longest wait for the broker's acknowledgement; default 10 s.
    """

    def __init__(
        self,
        inbox: Inbox,
        catalog: SchemaCatalog,
        sink: Callable[[], EventSink],
        topics: TopicSettings,
        tracer_provider: trace.TracerProvider | None = None,
        clock: Callable[[], float] = time.time,
        timeout_s: float = 10.0,
    ) -> None:
        self.inbox = inbox
        self.catalog = catalog
        self.topics = topics
        self.clock = clock
        self.delivery = Delivery(sink, topics, tracer_provider, timeout_s)
        """Shared with the audit answers: one answer is sent at a time."""

    # -- the three answers -------------------------------------------------------------------------

    def accept(self, card_id: str, operator_id: str, visibility: Visibility, body: AcceptRequest) -> AnswerResponse:
        card = self._pending(card_id, visibility, body.state_version)
        suggestion = card.deferral.suggestion
        if suggestion is None:
            raise AnswerRefused(
                f"deferral {card_id} has no suggestion to accept ({card.deferral.reason.value}): correct it"
            )
        return self._answer(card, visibility, operator_id, Verdict.accepted, suggestion)

    def correct(self, card_id: str, operator_id: str, visibility: Visibility, body: CorrectRequest) -> AnswerResponse:
        card = self._pending(card_id, visibility, body.state_version)
        action = self._valid_action(card, body.action.to_action())
        if card.deferral.suggestion is not None and same_action(action, card.deferral.suggestion):
            raise AnswerRefused("this action is the suggestion itself: accept it instead")
        return self._answer(card, visibility, operator_id, Verdict.corrected, action)

    def alternative(
        self, card_id: str, operator_id: str, visibility: Visibility, body: AlternativeRequest
    ) -> AnswerResponse:
        card = self._pending(card_id, visibility, body.state_version)
        if card.deferral.suggestion is None:
            raise AnswerRefused(f"deferral {card_id} has no suggestion to be an alternative to: correct it")
        action = self._valid_action(card, body.action.to_action())
        if same_action(action, card.deferral.suggestion):
            raise AnswerRefused("this action is the suggestion itself: accept it instead")
        return self._answer(card, visibility, operator_id, Verdict.acceptable_alternative, action)

    # -- checks ------------------------------------------------------------------------------------

    def _pending(self, card_id: str, visibility: Visibility, state_version: int | None) -> Card:
        card = self.inbox.get(card_id, visibility)
        if card is None:
            raise CardGone(f"deferral {card_id} is not pending: already answered, superseded, or unknown")
        if state_version is not None and state_version != card.state_version:
            raise CardGone(f"deferral {card_id} is for state version {card.state_version}, not {state_version}")
        return card

    def schema_for(self, card: Card) -> ProcessSchema:
        return schema_to_check(self.catalog, card.process_id)

    def _valid_action(self, card: Card, action: Action) -> Action:
        return checked_action(self.catalog, card.process_id, action)

    # -- records -----------------------------------------------------------------------------------

    def _answer(
        self, card: Card, visibility: Visibility, operator_id: str, verdict: Verdict, action: Action
    ) -> AnswerResponse:
        claimed = self.inbox.claim(card.id, visibility)
        if claimed is None:
            raise CardGone(f"deferral {card.id} was answered meanwhile")
        latency_ms = max(0, round((self.clock() - claimed.created_at) * 1000))
        answer = self.records(claimed, operator_id, verdict, action, latency_ms)
        try:
            self._deliver(claimed, answer)
        except Exception as exc:
            self.inbox.release(claimed)
            log.warning("answer to %s not delivered: %s", claimed.id, exc)
            raise AnswerNotDelivered(f"the answer could not be delivered ({exc}); try again") from exc
        self.inbox.complete(claimed, answer.executed)
        return AnswerResponse(
            deferral_id=claimed.id,
            session_id=claimed.session_id,
            verdict=verdict,
            feedback_id=answer.feedback.feedback_id,
            action_id=answer.executed.action_id,
            executed_action=answer.executed.action,
            operator_id=operator_id,
            latency_ms=latency_ms,
        )

    def records(self, card: Card, operator_id: str, verdict: Verdict, action: Action, latency_ms: int) -> Answer:
        deferral = card.deferral
        accepted = verdict is Verdict.accepted
        schema = self.catalog.schema(card.process_id)
        spec = schema.action(action.action_type) if schema is not None else None
        tier = deferral.tier if accepted and deferral.tier is not None else spec.tier if spec else ActionTier.critical
        executed = deferral.executed(action, accepted=accepted, tier=tier, operator_id=operator_id)
        feedback = CopilotFeedback.for_answer(
            deferral,
            verdict=verdict,
            operator_action=None if accepted else action,
            operator_id=operator_id,
            latency_ms=latency_ms,
            feedback_id=feedback_id_for(deferral.deferral_id, verdict, action),
        )
        return Answer(verdict=verdict, executed=executed, feedback=feedback)

    def _deliver(self, card: Card, answer: Answer) -> None:
        self.delivery.publish(
            card.session_id,
            card.headers,
            [(self.topics.actions_executed, answer.executed), (self.topics.copilot_feedback, answer.feedback)],
            {
                "selauto.session_id": card.session_id,
                "selauto.state_version": card.state_version,
                "selauto.verdict": answer.verdict.value,
            },
        )
