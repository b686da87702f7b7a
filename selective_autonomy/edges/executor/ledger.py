"""The durable record of which actions were claimed, applied or failed: the executor's deduplication.

The executor claims an action before its first attempt and records the outcome after the last,
in the feedback store's ``applied_actions`` table. A redelivered action finds the claim and is not
applied again, whether or not the platform honours idempotency keys, and across restarts and
executor replicas that share the store.

Claim keys: an action decided by the system is claimed under its ``action_id``; one executed by an
operator (the console's accept/correct) under ``<action_id>:operator``. The two differ only when an
operator answers an ``execution_failed`` deferral by approving the very action that failed: that is
a new decision to try again, and must not be swallowed as a duplicate of the failed attempt.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol, TypeVar

from selective_autonomy.schemas.event_parts import Executor
from selective_autonomy.schemas.events import ActionExecuted
from selective_autonomy.store import ActionStatus, FeedbackStore

T = TypeVar("T")

OPERATOR_SUFFIX = ":operator"


def claim_key(action: ActionExecuted) -> str:
    """The ledger key of ``action`` (see the module docstring)."""
    if action.executed_by is Executor.operator:
        return action.action_id + OPERATOR_SUFFIX
    return action.action_id


class Ledger(Protocol):
    async def claim(self, key: str, session_id: str, action_type: str) -> bool:
        """True for exactly one caller per key, ever."""
        ...

    async def mark(self, key: str, status: ActionStatus, detail: str = "") -> None: ...

    async def status(self, key: str) -> ActionStatus | None: ...


class StoreLedger:
    """A :class:`Ledger` on the feedback store; each call runs in a worker thread (the store is synchronous).

    :param store: an open feedback store (SQLite or PostgreSQL).
    :param attempts: tries per call before an error is raised; default 3.
    :param pause_s: first pause between tries, doubled each time; default 0.1 s.
    """

    def __init__(self, store: FeedbackStore, attempts: int = 3, pause_s: float = 0.1) -> None:
        self.store = store
        self.attempts = attempts
        self.pause_s = pause_s

    async def _call(self, function: Callable[[], T]) -> T:
        pause = self.pause_s
        for attempt in range(1, self.attempts + 1):
            try:
                return await asyncio.to_thread(function)
            except Exception:
                if attempt == self.attempts:
                    raise
                await asyncio.sleep(pause)
                pause *= 2
        raise AssertionError("unreachable")

    async def claim(self, key: str, session_id: str, action_type: str) -> bool:
        return await self._call(lambda: self.store.claim_action(key, session_id, action_type))

    async def mark(self, key: str, status: ActionStatus, detail: str = "") -> None:
        await self._call(lambda: self.store.mark_action(key, status, detail))

    async def status(self, key: str) -> ActionStatus | None:
        found = await self._call(lambda: self.store.applied_action(key))
        return None if found is None else found.status


class MemoryLedger:
    """A :class:`Ledger` in a dict: one process, nothing survives it (unit tests, simulations)."""

    def __init__(self) -> None:
        self.entries: dict[str, tuple[ActionStatus, str]] = {}

    async def claim(self, key: str, session_id: str, action_type: str) -> bool:
        if key in self.entries:
            return False
        self.entries[key] = (ActionStatus.claimed, "")
        return True

    async def mark(self, key: str, status: ActionStatus, detail: str = "") -> None:
        if key not in self.entries:
            raise KeyError(f"action {key} was never claimed")
        self.entries[key] = (status, detail)

    async def status(self, key: str) -> ActionStatus | None:
        entry = self.entries.get(key)
        return None if entry is None else entry[0]
