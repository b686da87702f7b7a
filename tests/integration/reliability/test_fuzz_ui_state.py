"""10,000 malformed and adversarial records on ui.state, interleaved with valid states: every
malformed one is dead-lettered with a reason, out-of-order states are skipped as stale, the worker
stays up and decides every valid state exactly once."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

import pytest

from selective_autonomy.config import Settings
from selective_autonomy.streams.producer import EventProducer

from .fuzz import fuzz_records
from .helpers import TopicCollector, WorkerProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SEED = 424242
TOTAL = 10_000


@pytest.mark.timeout(300)
def test_ten_thousand_malformed_and_adversarial_records(
    reliability_settings: Settings, spawn: Callable[..., WorkerProcess]
) -> None:
    settings = reliability_settings
    generated_at = time.monotonic()
    records = fuzz_records(TOTAL, sessions=400, seed_value=SEED)
    generate_s = time.monotonic() - generated_at
    assert len(records) == TOTAL
    dead = [r for r in records if r.expect == "dead"]
    stale = [r for r in records if r.expect == "stale"]
    decide = {(r.session_id, r.state_version) for r in records if r.expect == "decide"}
    assert len(decide) == TOTAL - len(dead) - len(stale)

    worker = spawn(settings, "worker")
    worker.wait_until(lambda w: w.ready(), 90, "readiness")
    pid = worker.process.pid if worker.process else None
    started = time.monotonic()
    with TopicCollector(settings) as collector:
        with EventProducer(settings) as producer:
            for record in records:
                producer.send_raw(settings.topics.ui_state, record.value, record.key, list(record.headers))  # type: ignore[arg-type]
        worker.wait_until(lambda w: w.metrics().get("events", 0) >= TOTAL, 240, "every record consumed")
        collector.wait_for(
            lambda c: len(c.snapshot()[1]) >= len(dead) and c.covers(decide), 60, "dead letters and decisions"
        )
        elapsed = time.monotonic() - started
        time.sleep(1.0)
        decisions, letters = collector.snapshot()
        by_state = collector.by_state()

    # The worker stayed up, in the same process, and says so.
    assert worker.alive and worker.process is not None and worker.process.pid == pid
    health = worker.healthz()
    assert health is not None and health["status"] == "ok"
    metrics = health["metrics"]
    assert metrics["events"] == TOTAL
    # Every malformed record is in the dead-letter topic, once, whole, with a reason.
    assert metrics["dead_letters"] == len(dead) == len(letters)
    assert Counter(letter.original for letter in letters) == Counter(r.value or b"" for r in dead)
    assert all(letter.error and letter.error_type and letter.topic == settings.topics.ui_state for letter in letters)
    # Out-of-order states are not dead letters: they are skipped, as stale (older than the session's
    # last decided state) or, when the session's newer states are still in the same batch, as
    # duplicates of the state the session table last recorded.
    assert sum(metrics["skipped"].values()) == len(stale)
    assert set(metrics["skipped"]) <= {"stale", "duplicate"}
    # Every valid state was decided exactly once (one record each: no redelivery without a crash).
    assert sum(metrics["outcomes"].values()) == len(decide)
    assert all(len(by_state[key]) == 1 for key in decide)
    assert len(decisions) == len(decide)
    worker.stop()
    assert worker.returncode == 0, worker.log_tail()

    kinds = Counter(r.kind for r in records)
    reasons = Counter(letter.error_type for letter in letters)
    print(
        f"\n{TOTAL} records generated in {generate_s:.1f} s, consumed in {elapsed:.1f} s: "
        f"{len(dead)} dead letters, {len(stale)} out of order (skipped: {metrics['skipped']}), "
        f"{len(decide)} decided\n"
        f"kinds: {dict(kinds)}\ndead-letter error types: {dict(reasons)}"
    )
