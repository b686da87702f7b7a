"""10,000 malformed and adversarial records on ui.state, interleaved with valid states: every
malformed one is dead-lettered with a reason, out-of-order states are skipped as stale, the worker
stays up and decides every valid state exactly once.

Hostile identifiers end to end: an id with ``/``, ``..`` or NUL is refused at the webhook (4xx,
nothing published), dead-lettered when it arrives on ui.state directly, and never reaches the disk."""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from confluent_kafka import Consumer, TopicPartition
from pydantic import SecretStr

from selective_autonomy.agents.worker import build_worker
from selective_autonomy.config import IngestSettings, Settings
from selective_autonomy.edges.ingest.app import create_ingest_app
from selective_autonomy.edges.standin import serve_in_thread
from selective_autonomy.streams.kafka_config import confluent_config
from selective_autonomy.streams.producer import EventProducer
from selective_autonomy.streams.runner import run_app_until

from .fuzz import SAMPLE, _body, _framed, fuzz_records
from .helpers import TopicCollector, WorkerProcess, ui_state

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


# Each id breaks its rule in selective_autonomy/schemas/identifiers.py: process ids and clusters name directories
# and threshold keys, session ids only refuse control characters, so a session id gets NUL.
HOSTILE_IDS: tuple[tuple[str, str], ...] = (
    ("process_id", "../../etc"),
    ("process_id", "billing/escape"),
    ("process_id", "bill\x00ing"),
    ("business_cluster", "../../etc"),
    ("business_cluster", "retail/escape"),
    ("business_cluster", "ret\x00ail"),
    ("session_id", "../../etc\x00"),
)
# What a hostile id would leave as a name on disk, had it built a path (NUL truncates in C).
FRAGMENTS = ("..", "\x00", "etc", "escape", "bill", "ret")
INGEST_TOKEN = "ingest-token-0123456789"


def ui_state_end(settings: Settings) -> int:
    """How many records ui.state holds (the sum of its partitions' high watermarks)."""
    consumer = Consumer(confluent_config(settings.kafka, "consumer", **{"group.id": "hostile-ids-ends"}))
    try:
        return sum(
            consumer.get_watermark_offsets(TopicPartition(settings.topics.ui_state, p), timeout=10)[1]
            for p in range(settings.topics.partitions)
        )
    finally:
        consumer.close()


def suspicious_names(root: Path) -> list[str]:
    """Every path under ``root`` with a name a hostile id could have made."""
    found = []
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            stem = name.split(".", 1)[0]
            if "\x00" in name or ".." in name or "escape" in name or stem in FRAGMENTS:
                found.append(os.path.join(folder, name))
    return found


@pytest.mark.timeout(120)
def test_hostile_identifiers_are_refused_dead_lettered_and_never_reach_the_disk(
    reliability_settings: Settings, tmp_path: Path
) -> None:
    settings = reliability_settings.model_copy(
        update={"ingest": IngestSettings(tokens={"crm": SecretStr(INGEST_TOKEN)}, publish_timeout_s=5.0)}
    )
    # The webhook's schema directory and the worker's models and data all live under tmp_path.
    assert settings.models_dir.is_relative_to(tmp_path) and settings.data_dir.is_relative_to(tmp_path)
    # Where a traversal out of the models or data directory, or out of the working directory, would land.
    outside = {
        Path(os.path.normpath(base / "../../etc")) / leaf
        for base in (settings.models_dir, settings.data_dir, tmp_path / "x", Path.cwd())
        for leaf in ("", "escape")
    }
    existed = {path for path in outside if os.path.lexists(path)}

    # 1. The webhook refuses each one (a batch is all-or-nothing: its valid event is not published either).
    valid = ui_state("hostile-ok", 0).model_dump(mode="json")
    auth = {"Authorization": f"Bearer {INGEST_TOKEN}"}
    with serve_in_thread(create_ingest_app(settings)) as url, httpx.Client(base_url=url, timeout=10) as client:
        for field, hostile in HOSTILE_IDS:
            bad = ui_state("hostile-web", 1).model_dump(mode="json") | {field: hostile}
            answer = client.post("/v1/ui-state:batch", json={"events": [valid, bad]}, headers=auth)
            assert answer.status_code == 422, f"{field}={hostile!r}: HTTP {answer.status_code} {answer.text}"
            body = answer.json()
            assert body["error"] == "invalid_batch", body
            assert [item["index"] for item in body["items"]] == [1], body
            locs = [v["loc"] for v in body["items"][0]["violations"]]
            assert any(loc.endswith(field) for loc in locs), f"{field}={hostile!r}: violations at {locs}"
        assert ui_state_end(settings) == 0, "a refused batch put records on ui.state"
        health = client.get("/healthz").json()
        assert health["refused"] == len(HOSTILE_IDS) and health["accepted"] == 0, health
        # The same webhook publishes a valid batch: the refusals above are about the ids.
        answer = client.post("/v1/ui-state:batch", json={"events": [valid]}, headers=auth)
        assert answer.status_code == 202 and answer.json()["published"] == 1, answer.text
    assert ui_state_end(settings) == 1

    # 2. The same ids produced straight to ui.state, well framed (as the fuzz encodes them).
    raw: dict[bytes, tuple[str, str]] = {}
    with EventProducer(settings) as producer:
        for field, hostile in HOSTILE_IDS:
            record = SAMPLE.to_avro()
            record[field] = hostile
            value = _framed(_body(record))
            raw[value] = (field, hostile)
            producer.send_raw(settings.topics.ui_state, value, hostile.encode())
    assert len(raw) == len(HOSTILE_IDS)

    decide_only = settings.model_copy(
        update={"worker": settings.worker.model_copy(update={"feedback": False, "learning": False})}
    )
    worker = build_worker(decide_only)
    metrics = worker.metrics
    run_app_until(
        worker.app,
        lambda: (
            metrics.events >= len(raw) + 1 and metrics.dead_letters + sum(metrics.outcomes.values()) >= len(raw) + 1
        ),
        timeout_s=60,
    )
    assert (metrics.events, metrics.dead_letters, sum(metrics.outcomes.values())) == (len(raw) + 1, len(raw), 1), (
        metrics.snapshot()
    )

    with TopicCollector(settings) as collector:
        collector.wait_for(
            lambda c: len(c.snapshot()[1]) >= len(raw) and c.covers([("hostile-ok", 0)]), 30, "dead letters"
        )
        collector.wait_for(lambda c: c.caught_up(), 30, "the end of the topics")
        decisions, letters = collector.snapshot()
    assert [(d.session_id, d.state_version) for d in decisions] == [("hostile-ok", 0)]
    assert Counter(letter.original for letter in letters) == Counter(raw.keys()), (
        "not one dead letter per hostile record"
    )
    for letter in letters:
        field, hostile = raw[letter.original]
        assert letter.topic == settings.topics.ui_state and letter.key == hostile.encode()
        assert letter.error_type == "DecodeError", f"{field}={hostile!r}: {letter.error_type}: {letter.error}"
        assert f"{field}: String should match pattern" in letter.error, f"{field}={hostile!r}: {letter.error}"

    # 3. Nothing on the disk: no name a hostile id could make under tmp_path, nothing new outside it.
    assert (settings.models_dir / "billing").is_dir()
    assert suspicious_names(tmp_path) == [], "a hostile id made a path"
    assert not os.path.lexists(tmp_path.parent / "etc"), f"{tmp_path.parent / 'etc'} was created"
    assert {path for path in outside if os.path.lexists(path)} == existed, "a traversal created a path outside tmp_path"
