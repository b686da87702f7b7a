"""Live updates: inbox and audit changes fanned out to each server-sent-events connection.

Changes come from any thread (the topic reader, request threads); each connection owns an
asyncio queue on its own loop and is fed with ``call_soon_threadsafe``. A connection that falls
behind by more than ``max_pending`` changes is told to resynchronise instead of being fed more.
Counters are not queued: connections poll :attr:`Inbox.revision` and :attr:`AuditBook.revision`
about once a second.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from selective_autonomy.console.audits import AuditBook, AuditChange
from selective_autonomy.console.inbox import Change, Inbox

RESYNC = "resync"

Changes = Sequence[Change | AuditChange]


@dataclass(eq=False)
class Subscription:
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[Changes | str] = field(default_factory=asyncio.Queue)
    pending: int = 0
    max_pending: int = 1000
    overflowed: bool = False

    def offer(self, changes: Changes) -> None:
        """Called on the subscription's loop."""
        if self.overflowed:
            return
        if self.pending >= self.max_pending:
            self.overflowed = True
            self.queue.put_nowait(RESYNC)
            return
        self.pending += 1
        self.queue.put_nowait(changes)

    async def next(self, timeout_s: float) -> Changes | str | None:
        try:
            item = await asyncio.wait_for(self.queue.get(), timeout_s)
        except TimeoutError:
            return None
        if item == RESYNC:
            self.overflowed, self.pending = False, 0
            while not self.queue.empty():
                self.queue.get_nowait()
        else:
            self.pending = max(0, self.pending - 1)
        return item


class Broadcaster:
    """Forwards inbox (and audit) changes to every live subscription."""

    def __init__(self, inbox: Inbox, audits: AuditBook | None = None) -> None:
        self._subscriptions: set[Subscription] = set()
        self._lock = threading.Lock()
        inbox.subscribe(self.publish)
        if audits is not None:
            audits.subscribe(self.publish)

    def subscribe(self, max_pending: int = 1000) -> Subscription:
        subscription = Subscription(loop=asyncio.get_running_loop(), max_pending=max_pending)
        with self._lock:
            self._subscriptions.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            self._subscriptions.discard(subscription)

    @property
    def connections(self) -> int:
        with self._lock:
            return len(self._subscriptions)

    def publish(self, changes: Changes) -> None:
        with self._lock:
            subscriptions = list(self._subscriptions)
        for subscription in subscriptions:
            try:
                subscription.loop.call_soon_threadsafe(subscription.offer, changes)
            except RuntimeError:  # its loop is closed: the connection is gone
                self.unsubscribe(subscription)


def sse_message(event: str, data: str) -> str:
    """One server-sent event; every line of ``data`` gets its own ``data:`` field."""
    lines = data.splitlines() or [""]
    return f"event: {event}\n" + "".join(f"data: {line}\n" for line in lines) + "\n"
