"""How an action reaches the platform: the :class:`ActionAdapter` protocol and the in-process adapters.

An adapter makes *one* attempt and says how it went: ``applied``, ``transient`` (worth another
attempt: 5xx, timeouts, connection errors) or ``permanent`` (the platform refused it: 4xx). Retries,
backoff, deduplication and failure reporting are the executor's, so every adapter gets them.

- :class:`~selective_autonomy.edges.executor.http_adapter.HttpAdapter`: a REST platform.
- :class:`CallableAdapter`: any function, sync or async; it signals failures by raising
  :class:`PermanentFailure` or :class:`TransientFailure`. This is the seam for the session
  simulator: its BPM can be a function that advances the simulated session.
- :class:`InMemoryPlatform`: records applied actions in memory (tests, demos, benchmarks).
"""

from __future__ import annotations

import inspect
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from selective_autonomy.edges.errors import EdgeError
from selective_autonomy.schemas.events import ActionExecuted


class AttemptOutcome(StrEnum):
    """How one attempt to apply an action went."""

    applied = "applied"
    transient = "transient"
    permanent = "permanent"


@dataclass(frozen=True)
class AdapterResult:
    """How one attempt went; ``status_code`` and ``excerpt`` describe the platform's answer when there was one."""

    outcome: AttemptOutcome
    status_code: int | None = None
    detail: str = ""
    excerpt: str = ""
    retry_after_s: float | None = None

    @classmethod
    def applied(cls, status_code: int | None = None, detail: str = "", excerpt: str = "") -> AdapterResult:
        return cls(AttemptOutcome.applied, status_code, detail, excerpt)

    @classmethod
    def transient(
        cls, detail: str, status_code: int | None = None, excerpt: str = "", retry_after_s: float | None = None
    ) -> AdapterResult:
        return cls(AttemptOutcome.transient, status_code, detail, excerpt, retry_after_s)

    @classmethod
    def permanent(cls, detail: str, status_code: int | None = None, excerpt: str = "") -> AdapterResult:
        return cls(AttemptOutcome.permanent, status_code, detail, excerpt)


class ActionAdapter(Protocol):
    """Applies actions to the platform, one attempt per call.

    The action's ``action_id`` is its idempotency key: pass it on whenever the platform accepts one.
    An exception escaping :meth:`apply` counts as a transient failure.
    """

    name: str

    async def apply(self, action: ActionExecuted, attempt: int) -> AdapterResult: ...

    async def aclose(self) -> None: ...


class PermanentFailure(EdgeError):
    """Raised by a :class:`CallableAdapter` function: the platform refused the action; do not retry."""

    def __init__(self, detail: str, status_code: int | None = None, excerpt: str = "") -> None:
        super().__init__(detail)
        self.detail = detail
        self.status_code = status_code
        self.excerpt = excerpt


class TransientFailure(EdgeError):
    """Raised by a :class:`CallableAdapter` function: try again later (after ``retry_after_s`` when given)."""

    def __init__(self, detail: str, status_code: int | None = None, retry_after_s: float | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status_code = status_code
        self.retry_after_s = retry_after_s


ApplyFunction = Callable[[ActionExecuted], object | Awaitable[object]]
"""A platform as a function: returns (or awaits) anything on success, raises the failures above."""


class CallableAdapter:
    """An adapter around a function. Keep the function quick or async: it runs on the executor's event loop.

    :param function: applies one action; its return value is ignored.
    :param name: shown in logs and failure records; default ``callable``.
    """

    def __init__(self, function: ApplyFunction, name: str = "callable") -> None:
        self.function = function
        self.name = name

    async def apply(self, action: ActionExecuted, attempt: int) -> AdapterResult:
        try:
            returned = self.function(action)
            if inspect.isawaitable(returned):
                await returned
        except PermanentFailure as exc:
            return AdapterResult.permanent(exc.detail, exc.status_code, exc.excerpt)
        except TransientFailure as exc:
            return AdapterResult.transient(exc.detail, exc.status_code, retry_after_s=exc.retry_after_s)
        return AdapterResult.applied(detail=f"applied by {self.name}")

    async def aclose(self) -> None:
        return None


class InMemoryPlatform(CallableAdapter):
    """A platform that keeps what it applied in a list, and can be told to fail.

    :param refuse: action type -> status code answered permanently (e.g. ``{"refund": 409}``).
    :param flaky: action type -> how many calls per action id fail transiently before one succeeds.
    :param on_applied: called with every applied action (a simulator advances its session here).
    """

    def __init__(
        self,
        refuse: dict[str, int] | None = None,
        flaky: dict[str, int] | None = None,
        on_applied: Callable[[ActionExecuted], None] | None = None,
    ) -> None:
        super().__init__(self._apply, name="in-memory")
        self.refuse = dict(refuse or {})
        self.flaky = dict(flaky or {})
        self.on_applied = on_applied
        self.applied: list[ActionExecuted] = []
        self.calls: Counter[str] = Counter()

    def _apply(self, action: ActionExecuted) -> None:
        action_type = action.action.action_type
        self.calls[action.action_id] += 1
        if action_type in self.refuse:
            status = self.refuse[action_type]
            raise PermanentFailure(f"{action_type} refused", status, f'{{"error": "{action_type} refused"}}')
        if self.calls[action.action_id] <= self.flaky.get(action_type, 0):
            raise TransientFailure(f"{action_type} briefly unavailable", 503)
        self.applied.append(action)
        if self.on_applied is not None:
            self.on_applied(action)
