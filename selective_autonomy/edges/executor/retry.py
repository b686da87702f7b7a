"""Exponential backoff with a bounded budget; pure functions of the attempt number (and a random draw)."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from selective_autonomy.config import RetrySettings


@dataclass(frozen=True)
class Backoff:
    """When to call again after a transient failure (see :class:`~selective_autonomy.config.RetrySettings`)."""

    max_attempts: int = 5
    initial_delay_s: float = 0.2
    multiplier: float = 2.0
    max_delay_s: float = 5.0
    budget_s: float = 30.0
    jitter: float = 0.2

    @classmethod
    def from_settings(cls, settings: RetrySettings) -> Backoff:
        return cls(
            max_attempts=settings.max_attempts,
            initial_delay_s=settings.initial_delay_s,
            multiplier=settings.multiplier,
            max_delay_s=settings.max_delay_s,
            budget_s=settings.budget_s,
            jitter=settings.jitter,
        )

    def base_delay(self, attempt: int) -> float:
        """The wait after failed attempt ``attempt`` (from 1), before jitter."""
        if attempt < 1:
            raise ValueError("attempts count from 1")
        return min(self.max_delay_s, self.initial_delay_s * self.multiplier ** (attempt - 1))

    def delay(
        self, attempt: int, retry_after_s: float | None = None, rng: Callable[[], float] = random.random
    ) -> float:
        """The wait after failed attempt ``attempt``: the base delay spread by +/- jitter, never below a
        ``Retry-After`` the platform asked for, never above ``max_delay_s``."""
        base = self.base_delay(attempt)
        spread = base * self.jitter * (2.0 * rng() - 1.0)
        wait = max(0.0, base + spread)
        if retry_after_s is not None:
            wait = max(wait, retry_after_s)
        return min(wait, self.max_delay_s)

    def schedule(self) -> list[float]:
        """The base waits between attempts that fit the budget (no jitter): what a dead platform costs."""
        waits: list[float] = []
        spent = 0.0
        for attempt in range(1, self.max_attempts):
            wait = self.base_delay(attempt)
            if spent + wait > self.budget_s:
                break
            waits.append(wait)
            spent += wait
        return waits


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds asked for by a ``Retry-After`` header (delta-seconds or an HTTP date); None when absent or bad."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
