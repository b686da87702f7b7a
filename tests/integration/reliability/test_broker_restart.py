"""Restart an in-memory broker under a running worker.

The broker comes back on the same port with nothing: no records, no committed offsets, no consumer
group, no topics. The behaviour chosen for a Kubernetes deployment: the worker rides out the outage
(it stays up and reconnects); once it reads an offset whose record changed, it logs that the broker
lost its data and exits once with status 75 (EX_TEMPFAIL); the supervisor starts a fresh worker,
which re-creates faust's internal topics and decides everything produced after the restart. The
operator re-creates the project's topics (`selauto topics create`), as the test does.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from selective_autonomy.agents.log_rewrites import EXIT_LOG_REWRITTEN
from selective_autonomy.config import EmbeddedBrokerSettings, Settings, TopicSettings
from selective_autonomy.schemas.events import UIStateChanged
from selective_autonomy.streams.broker import EmbeddedBroker, free_port
from selective_autonomy.streams.topics import ensure_topics

from .helpers import TopicCollector, WorkerProcess, decided_count, install_models, produce, replay

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def keys_of(states: list[UIStateChanged]) -> set[tuple[str, int]]:
    return {(s.session_id, s.state_version) for s in states}


@pytest.mark.timeout(300)
def test_worker_exits_once_after_an_in_memory_broker_restart_and_a_fresh_worker_carries_on(
    tmp_path: Path, spawn: Callable[..., WorkerProcess]
) -> None:
    broker_settings = EmbeddedBrokerSettings(port=free_port())
    broker = EmbeddedBroker(broker_settings, log_path=tmp_path / "tansu.log").start()
    try:
        settings = Settings(
            kafka=broker.kafka_settings(),
            topics=TopicSettings(partitions=2),
            app_id="restart-test",
            data_dir=tmp_path / "data",
            models_dir=tmp_path / "models",
        )
        ensure_topics(settings)
        install_models(settings.models_dir)
        worker = spawn(settings, "worker-1")
        worker.wait_until(lambda w: w.ready(), 90, "readiness")
        before = replay(40, prefix="before-")  # 160 states
        produce(settings, before)
        worker.wait_until(lambda w: decided_count(w) >= len(before), 60, "the first states decided")

        broker.stop()  # memory storage: every record, offset, group and topic is gone
        time.sleep(2.0)
        assert worker.alive, "a broker outage alone must not stop the worker"
        broker = EmbeddedBroker(broker_settings, log_path=tmp_path / "tansu.log").start()
        restarted_at = time.monotonic()
        ensure_topics(settings)  # the operator: `selauto topics create`
        # Fewer states than before: the new log reuses offsets the worker has already read.
        after = replay(10, prefix="after-")
        produce(settings, after)

        worker.process.wait(timeout=60)  # type: ignore[union-attr]
        noticed_s = time.monotonic() - restarted_at
        log = worker.log_tail(20_000)
        assert worker.returncode == EXIT_LOG_REWRITTEN, log
        assert "the broker lost its data" in log

        fresh = spawn(settings, "worker-2")  # what the supervisor does, once
        with TopicCollector(settings) as collector:
            collector.wait_for(lambda c: c.covers(keys_of(after)), 90, "the states produced after the restart")
            later = replay(10, prefix="later-")
            produce(settings, later)
            collector.wait_for(lambda c: c.covers(keys_of(later)), 60, "the states produced later")
            by_state = collector.by_state()
        assert all(len(by_state[key]) == 1 for key in keys_of(after) | keys_of(later))
        assert not keys_of(before) & set(by_state), "records from before the restart cannot be on the new broker"
        time.sleep(1.0)
        assert fresh.alive, fresh.log_tail()
        assert fresh.metrics()["dead_letters"] == 0
        fresh.stop()
        assert fresh.returncode == 0, fresh.log_tail()
        print(f"\nworker noticed the lost data {noticed_s:.1f} s after the broker came back")
    finally:
        broker.stop()
