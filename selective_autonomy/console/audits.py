"""Pending audits: a sample of the steps executed unattended, offered to operators to judge.

An audit is a :class:`~selective_autonomy.schemas.events.CopilotFeedback` without a deferral whose
``suggestion_action_id`` names the executed action; the learning loop measures the realised
precision of selective execution on them. This module only keeps the list of steps waiting for
one. Fed by the topic reader (executed actions and feedback) and by the console's own answers;
read by the routers. No Kafka and no FastAPI here, so every rule is unit-tested directly.

Rules:

- Only actions executed by the system are offered, and only those the systematic sample
  (:class:`~selective_autonomy.schemas.sampling.SystematicSample`) picks in their scope, the
  partition of ``actions.executed`` they were read from: every console replica reads each partition
  from its beginning in the same order, so every replica offers the same steps, each step with
  probability ``rate`` and ``rate`` of each partition's system executions, rounded. Once retention has
  deleted the head of a partition, a replica started later counts from the new head and may offer
  other steps than an older replica (each still with probability ``rate``); an answer in either
  removes its step from both.
- An audit is removed when any audit feedback for its action id is read (answered here or in
  another replica). Answered action ids are remembered (bounded, oldest forgotten), so reading the
  executed record again (a replay from the start of the topics, or the feedback read first) does
  not bring it back.
- A record for an action id that is pending, being answered or answered is ignored.
- Beyond ``max_pending`` the oldest pending audits are dropped.
- Answering claims the audit first (a second answer finds it gone), and gives it back if the
  feedback could not be delivered.

Every method is safe to call from any thread. Listeners are called in order with the book's lock
held: they must be quick and must not call back into the book.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from selective_autonomy.console.inbox import ChangeKind, Headers, Visibility, visible
from selective_autonomy.console.listeners import ChangeNotifier
from selective_autonomy.schemas.event_parts import Executor
from selective_autonomy.schemas.events import ActionExecuted, CopilotFeedback
from selective_autonomy.schemas.sampling import SystematicSample


@dataclass(frozen=True)
class PendingAudit:
    """An unattended step waiting for an operator's judgement."""

    executed: ActionExecuted
    headers: Headers
    arrived_at: float = field(metadata={"doc": "epoch seconds the record reached this console"})
    seq: int = field(default=0, metadata={"doc": "arrival order, oldest first"})
    inclusion_probability: float = field(
        default=1.0, metadata={"doc": "the audit rate it was sampled at: weights the audit in the precision monitor"}
    )

    @property
    def id(self) -> str:
        return self.executed.action_id

    @property
    def session_id(self) -> str:
        return self.executed.session_id

    @property
    def process_id(self) -> str:
        return self.executed.process_id

    @property
    def state_version(self) -> int:
        return self.executed.state_version


@dataclass(frozen=True)
class AuditChange:
    kind: ChangeKind
    action_id: str
    session_id: str
    process_id: str
    audit: PendingAudit | None = None


class AuditBook(ChangeNotifier[AuditChange]):
    """Unattended steps waiting for an audit.

    :param rate: share of system executions offered (see
        :class:`~selective_autonomy.schemas.sampling.SystematicSample`); default 0.05.
    :param max_pending: pending audits kept, the oldest dropped beyond; default 500.
    :param max_answered: answered action ids remembered; default 100 000.
    :param clock: epoch seconds; default ``time.time``.
    """

    def __init__(
        self,
        rate: float = 0.05,
        max_pending: int = 500,
        max_answered: int = 100_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.rate = rate
        self.sample = SystematicSample(rate, memory=max_answered)
        self.max_pending = max_pending
        self.max_answered = max_answered
        self.clock = clock
        super().__init__()
        self._pending: dict[str, PendingAudit] = {}  # action id -> audit, oldest first
        self._claimed: dict[str, PendingAudit] = {}  # action id -> audit being answered
        self._answered: OrderedDict[str, None] = OrderedDict()
        self._seq = 0
        self.revision = 0
        """Bumped on every change: readers poll it to know when to refresh."""

    def _notify(self, changes: list[AuditChange]) -> None:
        if changes:
            self.revision += 1
        super()._notify(changes)

    # -- input -------------------------------------------------------------------------------------

    def on_executed(
        self, executed: ActionExecuted, headers: Iterable[tuple[str, bytes]] = (), scope: str = ""
    ) -> list[AuditChange]:
        """Offer ``executed``, the next system execution read from ``scope`` (the partition it came
        from), for audit if the system ran it and the sample picks it."""
        if executed.executed_by is not Executor.system:
            return []
        with self._lock:
            if not self.sample.picks(scope, executed.action_id):
                return []
            action_id = executed.action_id
            if action_id in self._pending or action_id in self._claimed or action_id in self._answered:
                return []
            self._seq += 1
            audit = PendingAudit(
                executed=executed,
                headers=tuple(headers),
                arrived_at=self.clock(),
                seq=self._seq,
                inclusion_probability=self.rate,
            )
            self._pending[action_id] = audit
            changes = [_upsert(audit)]
            while len(self._pending) > self.max_pending:
                oldest = next(iter(self._pending.values()))
                changes.append(self._drop(oldest))
            self._notify(changes)
        return changes

    def on_feedback(self, feedback: CopilotFeedback) -> list[AuditChange]:
        """An audit was answered (here or in another console): that step is done."""
        if not feedback.is_audit or feedback.suggestion_action_id is None:
            return []
        with self._lock:
            action_id = feedback.suggestion_action_id
            self._remember(action_id)
            audit = self._pending.get(action_id)
            changes = [self._drop(audit)] if audit is not None else []
            self._notify(changes)
        return changes

    def _remember(self, action_id: str) -> None:
        self._answered[action_id] = None
        self._answered.move_to_end(action_id)
        while len(self._answered) > self.max_answered:
            self._answered.popitem(last=False)

    def _drop(self, audit: PendingAudit) -> AuditChange:
        del self._pending[audit.id]
        return AuditChange(ChangeKind.remove, audit.id, audit.session_id, audit.process_id)

    # -- answering ---------------------------------------------------------------------------------

    def claim(self, action_id: str, visibility: Visibility = None) -> PendingAudit | None:
        """Take the audit out of the list to answer it; None when it is not pending (or not visible)."""
        with self._lock:
            audit = self._pending.get(action_id)
            if audit is None or not visible(visibility, audit.process_id):
                return None
            change = self._drop(audit)
            self._claimed[action_id] = audit
            self._notify([change])
        return audit

    def complete(self, audit: PendingAudit) -> None:
        """The answer to ``audit`` was delivered: it never comes back."""
        with self._lock:
            self._claimed.pop(audit.id, None)
            self._remember(audit.id)
            self.revision += 1

    def release(self, audit: PendingAudit) -> None:
        """The answer failed: put the audit back unless it was answered meanwhile."""
        with self._lock:
            self._claimed.pop(audit.id, None)
            if audit.id in self._answered or audit.id in self._pending:
                return
            self._pending[audit.id] = audit
            self._pending = dict(sorted(self._pending.items(), key=lambda item: item[1].seq))
            changes = [_upsert(audit)]
            while len(self._pending) > self.max_pending:
                changes.append(self._drop(next(iter(self._pending.values()))))
            self._notify(changes)

    # -- reading -----------------------------------------------------------------------------------

    def get(self, action_id: str, visibility: Visibility = None) -> PendingAudit | None:
        with self._lock:
            audit = self._pending.get(action_id)
        if audit is None or not visible(visibility, audit.process_id):
            return None
        return audit

    def pending(self, visibility: Visibility = None) -> list[PendingAudit]:
        """Pending audits, oldest first."""
        with self._lock:
            return [audit for audit in self._pending.values() if visible(visibility, audit.process_id)]

    def count(self, visibility: Visibility = None) -> int:
        with self._lock:
            if visibility is None:
                return len(self._pending)
            return sum(1 for audit in self._pending.values() if audit.process_id in visibility)


def _upsert(audit: PendingAudit) -> AuditChange:
    return AuditChange(ChangeKind.upsert, audit.id, audit.session_id, audit.process_id, audit)
