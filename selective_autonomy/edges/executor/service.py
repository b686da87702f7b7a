"""Apply one action: claim it, call the adapter with retries, record the outcome.

:meth:`ActionExecutor.execute` never raises for the platform's sake, only when the ledger (the
store) is unreachable. What it returns says what the caller still owes:

- ``applied``: done, already recorded.
- ``duplicate``: another delivery of an action already applied or handed over; nothing to do.
- ``failed`` (refused, or retries ran out) and ``unknown`` (a claim with no recorded outcome: an
  executor stopped between claiming and recording, so the platform may or may not have applied it):
  the caller publishes ``ActionFailed`` and an ``execution_failed`` deferral, then calls
  :meth:`ActionExecutor.settle`, which records the failure. Recording only after the records are
  acknowledged means a crash in between repeats the hand-over, never loses it.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum

from selective_autonomy.edges.executor.adapters import ActionAdapter, AdapterResult, AttemptOutcome
from selective_autonomy.edges.executor.ledger import Ledger, claim_key
from selective_autonomy.edges.executor.retry import Backoff
from selective_autonomy.schemas.events import ActionExecuted
from selective_autonomy.store import ActionStatus

log = logging.getLogger(__name__)

MAX_DETAIL_CHARS = 2000
_PENDING_LIMIT = 10_000


class ExecutionStatus(StrEnum):
    applied = "applied"
    duplicate = "duplicate"
    failed = "failed"
    unknown = "unknown"


@dataclass(frozen=True)
class Execution:
    """What happened to one delivered action."""

    action: ActionExecuted
    status: ExecutionStatus
    attempts: int = 0
    status_code: int | None = None
    excerpt: str = ""
    error: str = ""

    @property
    def key(self) -> str:
        return claim_key(self.action)

    @property
    def needs_operator(self) -> bool:
        return self.status in (ExecutionStatus.failed, ExecutionStatus.unknown)


@dataclass
class ExecutorMetrics:
    applied: int = 0
    failed: int = 0
    unknown: int = 0
    duplicates: int = 0
    attempts: int = 0
    retries: int = 0
    by_status_code: dict[str, int] = field(default_factory=dict)

    def on_attempt(self, result: AdapterResult) -> None:
        self.attempts += 1
        code = str(result.status_code) if result.status_code is not None else "none"
        self.by_status_code[code] = self.by_status_code.get(code, 0) + 1

    def on_execution(self, execution: Execution) -> None:
        match execution.status:
            case ExecutionStatus.applied:
                self.applied += 1
            case ExecutionStatus.duplicate:
                self.duplicates += 1
            case ExecutionStatus.failed:
                self.failed += 1
            case ExecutionStatus.unknown:
                self.unknown += 1


class ActionExecutor:
    """Applies actions through an adapter, at most once per claim key.

    :param adapter: how actions reach the platform.
    :param ledger: the durable claims (:class:`~selective_autonomy.edges.executor.ledger.StoreLedger` in service).
    :param backoff: retry policy for transient failures; default :class:`Backoff` ().
    :param sleep: awaited between attempts; default ``asyncio.sleep`` (tests pass a recorder).
    :param clock: monotonic seconds, for the retry budget; default ``time.monotonic``.
    :param rng: uniform [0, 1) draws for the jitter; default ``random.random``.
    """

    def __init__(
        self,
        adapter: ActionAdapter,
        ledger: Ledger,
        backoff: Backoff | None = None,
        *,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.adapter = adapter
        self.ledger = ledger
        self.backoff = backoff or Backoff()
        self.sleep = sleep
        self.clock = clock
        self.rng = rng
        self.metrics = ExecutorMetrics()
        # Outcomes this process reached but has not recorded yet (the failure records were not
        # acknowledged, or the store was briefly away): a retried delivery reuses them instead of
        # reporting "unknown".
        self._unsettled: OrderedDict[str, Execution] = OrderedDict()

    async def execute(self, action: ActionExecuted) -> Execution:
        execution = await self._execute(action)
        self.metrics.on_execution(execution)
        return execution

    async def _execute(self, action: ActionExecuted) -> Execution:
        key = claim_key(action)
        if not await self.ledger.claim(key, action.session_id, action.action.action_type):
            return await self._already_claimed(action, key)
        result, attempts = await self._attempts(action)
        if result.outcome is AttemptOutcome.applied:
            execution = Execution(action, ExecutionStatus.applied, attempts, result.status_code, result.excerpt)
            self._remember(execution)
            await self.ledger.mark(key, ActionStatus.applied, (result.detail or "applied")[:MAX_DETAIL_CHARS])
            self._unsettled.pop(key, None)
            return execution
        if result.outcome is AttemptOutcome.permanent:
            error = f"refused: {result.detail}"
        else:
            error = f"gave up after {attempts} attempt(s): {result.detail}"
        execution = Execution(action, ExecutionStatus.failed, attempts, result.status_code, result.excerpt, error)
        self._remember(execution)
        return execution

    async def _already_claimed(self, action: ActionExecuted, key: str) -> Execution:
        status = await self.ledger.status(key)
        if status is not ActionStatus.claimed:
            return Execution(action, ExecutionStatus.duplicate, error=f"already {status.value if status else 'seen'}")
        unsettled = self._unsettled.get(key)
        if unsettled is not None:
            if unsettled.status is ExecutionStatus.applied:
                await self.ledger.mark(key, ActionStatus.applied, "applied (recorded late)")
                self._unsettled.pop(key, None)
                return Execution(action, ExecutionStatus.duplicate, error="applied before this delivery")
            return unsettled
        error = (
            "outcome unknown: the action was claimed by an executor that stopped before recording the outcome; "
            "check the platform before doing it again"
        )
        return Execution(action, ExecutionStatus.unknown, error=error)

    async def _attempts(self, action: ActionExecuted) -> tuple[AdapterResult, int]:
        deadline = self.clock() + self.backoff.budget_s
        attempt = 0
        while True:
            attempt += 1
            try:
                result = await self.adapter.apply(action, attempt)
            except Exception as exc:  # an adapter bug or an unexpected client error: worth another try
                log.warning("executor: adapter %s raised on %s", self.adapter.name, action.action_id, exc_info=True)
                result = AdapterResult.transient(f"{type(exc).__name__}: {exc}")
            self.metrics.on_attempt(result)
            if result.outcome is not AttemptOutcome.transient or attempt >= self.backoff.max_attempts:
                return result, attempt
            wait = self.backoff.delay(attempt, result.retry_after_s, self.rng)
            if self.clock() + wait > deadline:
                return result, attempt
            self.metrics.retries += 1
            await self.sleep(wait)

    def _remember(self, execution: Execution) -> None:
        self._unsettled[execution.key] = execution
        while len(self._unsettled) > _PENDING_LIMIT:
            self._unsettled.popitem(last=False)

    async def settle(self, execution: Execution) -> None:
        """Record a failure once its records are acknowledged (a no-op for any other outcome)."""
        if not execution.needs_operator:
            return
        await self.ledger.mark(execution.key, ActionStatus.failed, execution.error[:MAX_DETAIL_CHARS])
        self._unsettled.pop(execution.key, None)

    async def aclose(self) -> None:
        await self.adapter.aclose()
