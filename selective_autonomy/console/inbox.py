"""The in-memory inbox: per session the newest pending deferral, plus the counters of the header.

Fed by the topic reader (deferrals, executed actions, feedback) and by the console's own answers;
read by the routers. No Kafka and no FastAPI here, so every rule is unit-tested directly.

Rules:

- A session has at most one card: a deferral for a newer state version supersedes the older card
  (the session keeps its ``waiting_since``, so a session that keeps changing does not lose its place).
- A card is removed when anything later is decided for its session: an executed action or a
  feedback record at the card's state version or after. That progress is remembered per session
  (bounded, least recently seen forgotten), so a deferral read after the session moved on is ignored.
- Answering claims the card first (a second answer finds it gone), and gives it back if the
  answer's records could not be delivered.

Every method is safe to call from any thread. Listeners are called in order with the inbox's lock
held: they must be quick and must not call back into the inbox.
"""

from __future__ import annotations

import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from zoneinfo import ZoneInfo

from selective_autonomy.console.listeners import ChangeNotifier
from selective_autonomy.schemas.event_parts import Executor
from selective_autonomy.schemas.events import ActionExecuted, CopilotFeedback, OperatorDeferral

Visibility = frozenset[str] | None
"""Process ids an operator answers for; None: every process."""

Headers = tuple[tuple[str, bytes], ...]


def visible(visibility: Visibility, process_id: str) -> bool:
    return visibility is None or process_id in visibility


@dataclass(frozen=True)
class Card:
    """A pending deferral as the inbox holds it."""

    deferral: OperatorDeferral
    headers: Headers
    created_at: float = field(metadata={"doc": "epoch seconds this version entered the inbox"})
    waiting_since: float = field(metadata={"doc": "epoch seconds the session started waiting"})

    @property
    def id(self) -> str:
        return self.deferral.deferral_id

    @property
    def session_id(self) -> str:
        return self.deferral.session_id

    @property
    def process_id(self) -> str:
        return self.deferral.process_id

    @property
    def state_version(self) -> int:
        return self.deferral.state_version


class ChangeKind(StrEnum):
    upsert = "upsert"
    remove = "remove"


@dataclass(frozen=True)
class Change:
    kind: ChangeKind
    card_id: str
    session_id: str
    process_id: str
    card: Card | None = None


class Mode(StrEnum):
    unattended = "unattended"
    waiting = "waiting"
    ended = "ended"


@dataclass
class _Activity:
    process_id: str
    mode: Mode
    last_seen: float


@dataclass
class _Day:
    automated: Counter[str] = field(default_factory=Counter)
    by_operator: Counter[str] = field(default_factory=Counter)
    deferred: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True)
class Counts:
    unattended_sessions: int
    waiting: int
    automated_today: int
    operator_today: int
    deferred_today: int
    revision: int = 0  # the inbox revision these were counted at

    @property
    def automation_rate(self) -> float | None:
        total = self.automated_today + self.operator_today
        return self.automated_today / total if total else None


class Inbox(ChangeNotifier[Change]):
    """Pending deferrals and today's tallies.

    :param clock: epoch seconds; default ``time.time``.
    :param timezone: IANA zone where "today" starts; default ``"UTC"``.
    :param active_window_s: a session runs unattended while it acted this recently; default 900.
    :param ending_actions: action types that end a session; default ``("close_chat",)``.
    :param max_sessions: sessions whose progress is remembered; default 100 000.
    """

    def __init__(
        self,
        clock: Callable[[], float] = time.time,
        timezone: str = "UTC",
        active_window_s: float = 900.0,
        ending_actions: Iterable[str] = ("close_chat",),
        max_sessions: int = 100_000,
    ) -> None:
        self.clock = clock
        self.zone = ZoneInfo(timezone)
        self.active_window_s = active_window_s
        self.ending_actions = frozenset(ending_actions)
        self.max_sessions = max_sessions
        super().__init__()
        self._cards: dict[str, Card] = {}  # session id -> card
        self._session_of: dict[str, str] = {}  # card id -> session id
        self._claimed: dict[str, Card] = {}  # card id -> card being answered
        self._progress: OrderedDict[str, int] = OrderedDict()  # session id -> newest resolved state version
        self._activity: OrderedDict[str, _Activity] = OrderedDict()
        self._days: dict[date, _Day] = {}
        self._recent_ids: OrderedDict[str, None] = OrderedDict()
        self._counts_cache: dict[Visibility, tuple[float, Counts]] = {}
        self.revision = 0
        """Bumped on every change, counters included: readers poll it to know when to refresh."""

    # -- input -------------------------------------------------------------------------------------

    def on_deferral(self, deferral: OperatorDeferral, headers: Iterable[tuple[str, bytes]] = ()) -> list[Change]:
        """Add the card of ``deferral`` unless its session has already moved past it."""
        with self._lock:
            changes = self._add_deferral(deferral, tuple(headers))
            self._notify(changes)
        return changes

    def _add_deferral(self, deferral: OperatorDeferral, headers: Headers) -> list[Change]:
        self.revision += 1
        self._tally_deferral(deferral)
        session = deferral.session_id
        resolved = self._progress.get(session)
        if resolved is not None and deferral.state_version <= resolved:
            return []
        if deferral.deferral_id in self._claimed:
            return []
        existing = self._cards.get(session)
        if existing is not None and existing.state_version >= deferral.state_version:
            return []
        self._touch(session, deferral.process_id, Mode.waiting, deferral.deferred_at.timestamp())
        changes: list[Change] = []
        waiting_since = deferral.deferred_at.timestamp()
        if existing is not None:
            waiting_since = existing.waiting_since
            changes.append(self._drop(existing))
        card = Card(deferral=deferral, headers=headers, created_at=self.clock(), waiting_since=waiting_since)
        self._cards[session] = card
        self._session_of[card.id] = session
        changes.append(Change(ChangeKind.upsert, card.id, session, card.process_id, card))
        return changes

    def on_executed(self, executed: ActionExecuted) -> list[Change]:
        """An action ran for a session: tally it, and drop that session's card if it is not newer."""
        with self._lock:
            self.revision += 1
            self._tally_executed(executed)
            ended = executed.action.action_type in self.ending_actions
            self._touch(
                executed.session_id,
                executed.process_id,
                Mode.ended if ended else Mode.unattended,
                executed.decided_at.timestamp(),
            )
            changes = self._resolve(executed.session_id, executed.state_version)
            self._notify(changes)
        return changes

    def on_feedback(self, feedback: CopilotFeedback) -> list[Change]:
        """An operator answered (here or in another console): the card of that state is done."""
        with self._lock:
            self.revision += 1
            changes = self._resolve(feedback.session_id, feedback.state_version)
            self._notify(changes)
        return changes

    def _resolve(self, session: str, state_version: int) -> list[Change]:
        previous = self._progress.get(session, -1)
        self._progress[session] = max(previous, state_version)
        self._progress.move_to_end(session)
        while len(self._progress) > self.max_sessions:
            self._progress.popitem(last=False)
        card = self._cards.get(session)
        if card is not None and card.state_version <= state_version:
            return [self._drop(card)]
        return []

    def _drop(self, card: Card) -> Change:
        del self._cards[card.session_id]
        self._session_of.pop(card.id, None)
        return Change(ChangeKind.remove, card.id, card.session_id, card.process_id)

    def _touch(self, session: str, process_id: str, mode: Mode, at: float) -> None:
        activity = self._activity.get(session)
        if activity is None:
            self._activity[session] = _Activity(process_id, mode, at)
        elif at >= activity.last_seen:
            activity.mode, activity.last_seen = mode, at
        self._activity.move_to_end(session)
        while len(self._activity) > self.max_sessions:
            self._activity.popitem(last=False)

    def _day(self, at: datetime) -> _Day:
        day = at.astimezone(self.zone).date()
        tally = self._days.get(day)
        if tally is None:
            tally = self._days[day] = _Day()
            for old in sorted(self._days)[:-3]:  # keep a little history for late records around midnight
                del self._days[old]
        return tally

    def _first_time(self, record_id: str) -> bool:
        """Whether ``record_id`` is new; redeliveries (and our own answers read back) arrive soon
        after the original, so remembering the most recent ids is enough."""
        if record_id in self._recent_ids:
            return False
        self._recent_ids[record_id] = None
        while len(self._recent_ids) > 2 * self.max_sessions:
            self._recent_ids.popitem(last=False)
        return True

    def _tally_executed(self, executed: ActionExecuted) -> None:
        if not self._first_time(f"a:{executed.action_id}"):
            return
        tally = self._day(executed.decided_at)
        if executed.executed_by is Executor.system:
            tally.automated[executed.process_id] += 1
        else:
            tally.by_operator[executed.process_id] += 1

    def _tally_deferral(self, deferral: OperatorDeferral) -> None:
        if self._first_time(f"d:{deferral.deferral_id}"):
            self._day(deferral.deferred_at).deferred[deferral.process_id] += 1

    # -- answering ---------------------------------------------------------------------------------

    def claim(self, card_id: str, visibility: Visibility = None) -> Card | None:
        """Take the card out of the inbox to answer it; None when it is not pending (or not visible)."""
        with self._lock:
            session = self._session_of.get(card_id)
            card = self._cards.get(session) if session is not None else None
            if card is None or card.id != card_id or not visible(visibility, card.process_id):
                return None
            change = self._drop(card)
            self._claimed[card.id] = card
            self.revision += 1
            self._notify([change])
        return card

    def complete(self, card: Card, executed: ActionExecuted | None = None) -> None:
        """The answer to ``card`` was delivered: its session has moved past the card's state."""
        with self._lock:
            self._claimed.pop(card.id, None)
            if executed is not None:
                self._tally_executed(executed)
                self._touch(card.session_id, card.process_id, Mode.unattended, self.clock())
            changes = self._resolve(card.session_id, card.state_version)
            self.revision += 1
            self._notify(changes)

    def release(self, card: Card) -> None:
        """The answer failed: put the card back unless its session moved on meanwhile."""
        with self._lock:
            self._claimed.pop(card.id, None)
            resolved = self._progress.get(card.session_id, -1)
            existing = self._cards.get(card.session_id)
            if resolved >= card.state_version or (
                existing is not None and existing.state_version >= card.state_version
            ):
                return
            changes: list[Change] = []
            if existing is not None:
                changes.append(self._drop(existing))
            self._cards[card.session_id] = card
            self._session_of[card.id] = card.session_id
            changes.append(Change(ChangeKind.upsert, card.id, card.session_id, card.process_id, card))
            self.revision += 1
            self._notify(changes)

    # -- reading -----------------------------------------------------------------------------------

    def get(self, card_id: str, visibility: Visibility = None) -> Card | None:
        with self._lock:
            session = self._session_of.get(card_id)
            card = self._cards.get(session) if session is not None else None
        if card is None or card.id != card_id or not visible(visibility, card.process_id):
            return None
        return card

    def cards(self, visibility: Visibility = None) -> list[Card]:
        """Pending cards, the session waiting longest first."""
        with self._lock:
            cards = [card for card in self._cards.values() if visible(visibility, card.process_id)]
        return sorted(cards, key=lambda c: (c.waiting_since, c.created_at, c.id))

    def counts(self, visibility: Visibility = None, max_age_s: float = 0.0) -> Counts:
        """The header counters; a result up to ``max_age_s`` old may be reused (default: always fresh).

        Counting running sessions scans the remembered sessions, so the live stream, which asks
        once a second per connection, shares one result per second among its connections.
        """
        now = self.clock()
        with self._lock:
            cached = self._counts_cache.get(visibility)
            if cached is not None and now - cached[0] < max_age_s:
                return cached[1]
            counts = self._count(visibility, now)
            self._counts_cache[visibility] = (now, counts)
            return counts

    def _count(self, visibility: Visibility, now: float) -> Counts:
        waiting = sum(1 for card in self._cards.values() if visible(visibility, card.process_id))
        unattended = 0
        for session, activity in self._activity.items():
            if (
                activity.mode is Mode.unattended
                and now - activity.last_seen <= self.active_window_s
                and session not in self._cards
                and visible(visibility, activity.process_id)
            ):
                unattended += 1
        today = self._days.get(datetime.fromtimestamp(now, self.zone).date(), _Day())

        def total(counter: Counter[str]) -> int:
            return sum(n for process, n in counter.items() if visible(visibility, process))

        return Counts(
            unattended_sessions=unattended,
            waiting=waiting,
            automated_today=total(today.automated),
            operator_today=total(today.by_operator),
            deferred_today=total(today.deferred),
            revision=self.revision,
        )

    def processes(self) -> set[str]:
        """Processes seen in cards or activity (for the stage display when no models dir is set)."""
        with self._lock:
            return {a.process_id for a in self._activity.values()} | {c.process_id for c in self._cards.values()}
