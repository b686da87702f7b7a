"""The backoff schedule: exponential, capped, jittered within bounds, within the budget, Retry-After honoured."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from selective_autonomy.config import RetrySettings
from selective_autonomy.edges.executor.retry import Backoff, parse_retry_after


def test_base_delays_grow_exponentially_up_to_the_cap() -> None:
    backoff = Backoff(max_attempts=8, initial_delay_s=0.2, multiplier=2.0, max_delay_s=1.0, budget_s=100)
    assert [backoff.base_delay(n) for n in range(1, 6)] == pytest.approx([0.2, 0.4, 0.8, 1.0, 1.0])
    with pytest.raises(ValueError):
        backoff.base_delay(0)


def test_the_schedule_stops_at_max_attempts_and_at_the_budget() -> None:
    assert Backoff(max_attempts=4, budget_s=100).schedule() == pytest.approx([0.2, 0.4, 0.8])
    assert Backoff(max_attempts=10, initial_delay_s=1, multiplier=2, max_delay_s=100, budget_s=10).schedule() == [
        1,
        2,
        4,
    ]
    assert Backoff(max_attempts=1).schedule() == []


def test_jitter_stays_within_its_spread() -> None:
    backoff = Backoff(initial_delay_s=1.0, jitter=0.2, max_delay_s=10)
    assert backoff.delay(1, rng=lambda: 0.0) == pytest.approx(0.8)
    assert backoff.delay(1, rng=lambda: 0.5) == pytest.approx(1.0)
    assert backoff.delay(1, rng=lambda: 0.999999) == pytest.approx(1.2, abs=1e-5)
    assert Backoff(initial_delay_s=1.0, jitter=0.0).delay(1) == 1.0


def test_retry_after_is_a_floor_but_never_beyond_the_cap() -> None:
    backoff = Backoff(initial_delay_s=0.2, jitter=0.0, max_delay_s=5.0)
    assert backoff.delay(1, retry_after_s=2.0) == 2.0
    assert backoff.delay(1, retry_after_s=60.0) == 5.0
    assert backoff.delay(1, retry_after_s=0.0) == pytest.approx(0.2)


def test_retry_after_headers() -> None:
    now = datetime(2026, 3, 2, 9, 0, 0, tzinfo=UTC)
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("Mon, 02 Mar 2026 09:00:07 GMT", now) == pytest.approx(7.0)
    assert parse_retry_after("Mon, 02 Mar 2026 08:00:00 GMT", now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_settings_become_the_policy() -> None:
    settings = RetrySettings(max_attempts=3, initial_delay_s=0.5, multiplier=3, max_delay_s=2, budget_s=9, jitter=0.1)
    assert Backoff.from_settings(settings) == Backoff(3, 0.5, 3.0, 2.0, 9.0, 0.1)
