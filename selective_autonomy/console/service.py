"""The read side of the console: an operator's inbox, pending audits and counters, as protocol models."""

from __future__ import annotations

from collections.abc import Callable

from selective_autonomy.config import ConsoleSettings
from selective_autonomy.console.audits import AuditBook, PendingAudit
from selective_autonomy.console.cards import audit_view, card_view
from selective_autonomy.console.catalog import SchemaCatalog
from selective_autonomy.console.inbox import Card, Inbox, Visibility, visible
from selective_autonomy.console.protocol import AuditsView, AuditView, CardView, CountersView, InboxView


class InboxService:
    """What one operator sees.

    :param feed_state: the topic reader's state for the header; default ``"off"``.
    :param audits: the pending audits; default an empty book that offers none.
    """

    def __init__(
        self,
        inbox: Inbox,
        catalog: SchemaCatalog,
        config: ConsoleSettings,
        feed_state: Callable[[], str] = lambda: "off",
        audits: AuditBook | None = None,
    ) -> None:
        self.inbox = inbox
        self.catalog = catalog
        self.config = config
        self.feed_state = feed_state
        self.audits = audits if audits is not None else AuditBook(rate=0.0)

    def visibility(self, operator_id: str) -> Visibility:
        return self.config.processes_of(operator_id)

    def view(self, card: Card) -> CardView:
        return card_view(card, self.catalog.schema(card.process_id), self.config.chat_turns, self.config.recent_actions)

    def cards(self, operator_id: str) -> list[CardView]:
        return [self.view(card) for card in self.inbox.cards(self.visibility(operator_id))]

    def card(self, operator_id: str, card_id: str) -> CardView | None:
        card = self.inbox.get(card_id, self.visibility(operator_id))
        return self.view(card) if card is not None else None

    def counters(self, operator_id: str, max_age_s: float = 0.0) -> CountersView:
        visibility = self.visibility(operator_id)
        counts = self.inbox.counts(visibility, max_age_s)
        stages = [row for row in self.catalog.stages() if visible(visibility, row.process_id)]
        return CountersView(
            unattended_sessions=counts.unattended_sessions,
            waiting=counts.waiting,
            automated_today=counts.automated_today,
            operator_today=counts.operator_today,
            deferred_today=counts.deferred_today,
            automation_rate=counts.automation_rate,
            stages=stages,
            feed=self.feed_state(),
            revision=counts.revision,
            audits_pending=self.audits.count(visibility),
        )

    def inbox_view(self, operator_id: str) -> InboxView:
        return InboxView(operator_id=operator_id, cards=self.cards(operator_id), counters=self.counters(operator_id))

    # -- audits ------------------------------------------------------------------------------------

    def audit_view(self, audit: PendingAudit) -> AuditView:
        return audit_view(audit, self.catalog.schema(audit.process_id))

    def audit_list(self, operator_id: str) -> list[AuditView]:
        return [self.audit_view(audit) for audit in self.audits.pending(self.visibility(operator_id))]

    def audit(self, operator_id: str, action_id: str) -> AuditView | None:
        audit = self.audits.get(action_id, self.visibility(operator_id))
        return self.audit_view(audit) if audit is not None else None

    def audits_view(self, operator_id: str) -> AuditsView:
        return AuditsView(operator_id=operator_id, audits=self.audit_list(operator_id))
