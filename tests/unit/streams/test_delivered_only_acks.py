"""Only records delivered to an agent can move the committable offset (see ``DeliveredOnlyAcks``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import SimpleNamespace

import pytest
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP
from faust.types.tuples import ConsumerMessage

from selective_autonomy.config import Settings
from selective_autonomy.streams.app import build_app, raw_topic
from selective_autonomy.streams.delivered_acks import DeliveredOnlyAcks

TOPIC = "ui.state"


def consumer_with_agent(tmp_path: Path) -> DeliveredOnlyAcks:
    settings = Settings(data_dir=tmp_path)
    app = build_app(settings, app_id="acks-test")

    topic = raw_topic(app, TOPIC)
    app.topics.add(topic)
    # What the conductor does when it subscribes (Conductor._update_indices), without a broker.
    app.topics._acking_topics.add(TOPIC)  # type: ignore[attr-defined]
    consumer = app.consumer
    assert isinstance(consumer, DeliveredOnlyAcks)
    return consumer


def message(offset: int, *, delivered: bool) -> ConsumerMessage:
    record = ConsumerMessage(TOPIC, 0, offset, 0.0, 0, None, b"k", b"v", None)
    record.tracked = delivered
    return record


def test_a_skipped_record_leaves_a_gap_that_stops_the_commit(tmp_path: Path) -> None:
    consumer = consumer_with_agent(tmp_path)
    tp = TP(TOPIC, 0)
    assert message(0, delivered=True).ack(consumer)
    # Fetched under the previous generation: faust skips it and acks it without delivering it.
    assert not message(1, delivered=False).ack(consumer)
    assert message(2, delivered=True).ack(consumer)
    assert consumer.refused_acks == 1
    assert consumer._new_offset(tp) == 1  # the commit stops before the record nobody saw


def test_delivered_records_commit_as_faust_does(tmp_path: Path) -> None:
    consumer = consumer_with_agent(tmp_path)
    for offset in range(3):
        assert message(offset, delivered=True).ack(consumer)
    assert consumer.refused_acks == 0
    assert consumer._new_offset(TP(TOPIC, 0)) == 3


def fetched(offsets: list[int], partition: int = 0) -> list[tuple[TP, ConsumerMessage]]:
    tp = TP(TOPIC, partition)
    return [(tp, ConsumerMessage(TOPIC, partition, o, 0.0, 0, None, b"k", b"v", None)) for o in offsets]


def deliver(
    consumer: DeliveredOnlyAcks,
    monkeypatch: pytest.MonkeyPatch,
    batches: list[list[tuple[TP, ConsumerMessage]]],
    seek_fails: bool = False,
) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Run the consumer's getmany over ``batches`` of fetched records as faust's drain loop would
    (recording each delivered offset as read); returns (partition, offset) delivered and sought."""
    queue = list(batches)
    sought: list[tuple[int, int]] = []

    async def parent_getmany(self: object, timeout: float) -> AsyncIterator[tuple[TP, ConsumerMessage]]:
        for item in queue.pop(0):
            yield item

    async def seek(tp: TP, offset: int) -> None:
        if seek_fails:
            raise RuntimeError(f"{tp} is not assigned")
        sought.append((tp.partition, offset))
        consumer._read_offset[tp] = offset

    monkeypatch.setattr(faust_aiokafka.Consumer, "getmany", parent_getmany)
    monkeypatch.setattr(consumer, "seek", seek)
    delivered: list[tuple[int, int]] = []

    async def drain() -> None:
        while queue:
            async for tp, message in consumer.getmany(timeout=1.0):
                delivered.append((tp.partition, message.offset))
                consumer._read_offset[tp] = message.offset

    asyncio.run(drain())
    return delivered, sought


def test_a_fetch_that_jumps_past_unread_records_reads_them_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    consumer = consumer_with_agent(tmp_path)
    # Offsets 3 and 4 of partition 0 were not fetched after 2: faust would count them as read.
    delivered, sought = deliver(
        consumer, monkeypatch, [fetched([1, 2, 5, 6]) + fetched([7], partition=1), fetched([2, 3, 4, 5, 6])]
    )
    assert sought == [(0, 2)]
    assert delivered == [(0, 1), (0, 2), (1, 7), (0, 2), (0, 3), (0, 4), (0, 5), (0, 6)]
    assert consumer.jumps == 1


def test_records_missing_after_reading_again_are_a_hole_left_to_faust(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    consumer = consumer_with_agent(tmp_path)
    delivered, sought = deliver(consumer, monkeypatch, [fetched([1, 2, 5]), fetched([2, 5, 6])])
    assert sought == [(0, 2)]  # once: 3 and 4 are not in the log (a compacted or transactional topic)
    assert delivered == [(0, 1), (0, 2), (0, 2), (0, 5), (0, 6)]


def test_a_partition_that_cannot_be_sought_any_more_is_left_to_faust(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    consumer = consumer_with_agent(tmp_path)
    delivered, sought = deliver(consumer, monkeypatch, [fetched([1, 2, 5])], seek_fails=True)
    assert sought == [] and delivered == [(0, 1), (0, 2), (0, 5)]


def test_a_gap_in_the_fetched_offsets_is_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    consumer = consumer_with_agent(tmp_path)
    tp = TP(TOPIC, 0)
    with caplog.at_level(logging.WARNING, logger="selective_autonomy.streams.delivered_acks"):
        asyncio.run(consumer._add_gap(tp, 5, 7))
    assert consumer.gaps == 1
    assert "offsets 5..7" in caplog.text


def test_the_committed_record_is_the_first_delivered_after_a_seek_to_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    consumer = consumer_with_agent(tmp_path)
    tp = TP(TOPIC, 0)

    async def seek_to_committed(self: object) -> dict[TP, int]:
        return {tp: 4}

    monkeypatch.setattr(faust_aiokafka.Consumer, "seek_to_committed", seek_to_committed)
    asyncio.run(consumer.perform_seek())
    # faust now keeps 4 (the next record to read) as if it were the last one read: without the
    # guard, 5 would pass its gap test and 4 would never reach the agent.
    delivered, sought = deliver(consumer, monkeypatch, [fetched([5, 6]), fetched([4, 5, 6])])
    assert sought == [(0, 4)]
    assert delivered == [(0, 4), (0, 5), (0, 6)]
    assert consumer.jumps == 1


def test_a_commit_never_passes_the_committed_record_before_it_is_acked(tmp_path: Path) -> None:
    consumer = consumer_with_agent(tmp_path)
    tp = TP(TOPIC, 0)
    consumer._committed_offset[tp] = 4
    # 4 is still unread or in flight; faust's own test (min(acked) - committed > 1) would commit 7.
    for offset in (5, 6):
        assert message(offset, delivered=True).ack(consumer)
    assert consumer._new_offset(tp) is None and consumer.head_waits == 1
    assert message(4, delivered=True).ack(consumer)
    assert consumer._new_offset(tp) == 7


def drain_fetches(
    consumer: DeliveredOnlyAcks,
    monkeypatch: pytest.MonkeyPatch,
    ends: dict[int, int],
    positions: dict[int, int],
    yielded: list[set[int]],
    on_handed: Callable[[ConsumerMessage], None] | None = None,
) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Like :func:`deliver`, one step lower, with aiokafka's position: each fetch returns a
    partition's records from its position to the end of its log (``ends``) and moves the position
    there; faust's getmany then yields those of the partitions in ``yielded[i]`` only and drops the
    others, as it drops a partition paused after the fetch. A seek moves the position. ``on_handed``
    sees each record handed to faust's callback. Returns (partition, offset) handed and sought."""
    fetches = list(yielded)
    sought: list[tuple[int, int]] = []

    async def wait_next_records(self: object, timeout: float) -> tuple[dict[TP, list[SimpleNamespace]], None]:
        records = {TP(TOPIC, p): [SimpleNamespace(offset=o) for o in range(positions[p], ends[p])] for p in ends}
        positions.update(ends)
        return {tp: batch for tp, batch in records.items() if batch}, None

    async def parent_getmany(self: DeliveredOnlyAcks, timeout: float) -> AsyncIterator[tuple[TP, ConsumerMessage]]:
        records, _ = await self._wait_next_records(timeout)
        partitions = fetches.pop(0)
        for tp, batch in records.items():
            if tp.partition in partitions:
                for record in batch:
                    yield (
                        tp,
                        ConsumerMessage(
                            TOPIC, tp.partition, record.offset, 0.0, 0, None, b"k", b"v", None, generation_id=0
                        ),
                    )

    async def seek(tp: TP, offset: int) -> None:
        sought.append((tp.partition, offset))
        positions[tp.partition] = offset
        consumer._read_offset[tp] = offset

    monkeypatch.setattr(faust_aiokafka.Consumer, "_wait_next_records", wait_next_records)
    monkeypatch.setattr(faust_aiokafka.Consumer, "getmany", parent_getmany)
    monkeypatch.setattr(consumer, "seek", seek)
    handed: list[tuple[int, int]] = []

    async def drain() -> None:
        while fetches:
            async for tp, message in consumer.getmany(timeout=1.0):
                handed.append((tp.partition, message.offset))
                consumer._read_offset[tp] = message.offset
                if on_handed is not None:
                    on_handed(message)

    asyncio.run(drain())
    return handed, sought


def test_records_fetched_but_dropped_by_faust_are_read_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    consumer = consumer_with_agent(tmp_path)
    consumer._read_offset[TP(TOPIC, 0)] = 3
    # 4..6, the partition's last records, are fetched and then dropped by faust's getmany (the
    # partition was paused after the fetch). aiokafka's position is past them and no later record
    # shows a jump: without a seek back they are never delivered nor acked, and the partition stalls.
    handed, sought = drain_fetches(consumer, monkeypatch, {0: 7, 1: 10}, {0: 4, 1: 9}, [{1}, {0, 1}, {0, 1}])
    assert sought == [(0, 4)]
    assert handed == [(1, 9), (0, 4), (0, 5), (0, 6)]
    assert consumer.rereads == 1


def test_records_cleared_from_the_agents_queue_are_read_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    consumer = consumer_with_agent(tmp_path)
    app = consumer.app
    tp = TP(TOPIC, 0)
    app.flow_control.resume()
    agent_queue = app.FlowControlQueue(maxsize=100, clear_on_resume=True)  # an agent's channel queue
    # As after faust's seek to the committed offset 4 at the end of table recovery.
    consumer._read_offset[tp] = consumer._committed_offset[tp] = consumer._first_after_seek[tp] = 4

    cleared: list[int] = []

    def on_handed(message: ConsumerMessage) -> None:
        agent_queue.put_nowait(SimpleNamespace(message=message))
        if message.offset == 4 and not cleared:
            # faust's recovery resumes flow that is already active: the queue is cleared, 4 with it.
            cleared.append(agent_queue.qsize())
            app.flow_control.resume()

    handed, sought = drain_fetches(consumer, monkeypatch, {0: 7}, {0: 4}, [{0}, {0}, {0}], on_handed)
    assert sought == [(0, 4)]  # 5 follows 4 as faust's gap test expects: only the clear shows that 4 is lost
    assert cleared == [1] and handed == [(0, 4), (0, 4), (0, 5), (0, 6)]
    assert consumer.rereads == 1


def test_a_drop_before_a_rebalance_is_not_read_again_after_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    consumer = consumer_with_agent(tmp_path)
    consumer.on_dropped(TP(TOPIC, 0), 5, 0, "cleared from its queue")
    # The new generation starts at the committed offset 4: a seek to 5 would pass over 4.
    consumer.app.consumer_generation_id = 1
    handed, sought = drain_fetches(consumer, monkeypatch, {0: 7}, {0: 4}, [{0}])
    assert sought == [] and handed == [(0, 4), (0, 5), (0, 6)]


CHANGELOG = "test-sessions-changelog"


def fetch_across_a_rebalance(
    consumer: DeliveredOnlyAcks, monkeypatch: pytest.MonkeyPatch, positions: dict[int, int], rebalance: bool
) -> object:
    """What faust's ``_getmany`` hands over for a batch of changelog records 725..731 (partition 0)
    and 40..41 (partition 1), fetched while the worker read them as a standby; with ``rebalance``, a
    rebalance happens while the fetch is out and leaves aiokafka's positions at ``positions``."""
    batch = {
        TP(CHANGELOG, 0): [SimpleNamespace(offset=o) for o in range(725, 732)],
        TP(CHANGELOG, 1): [SimpleNamespace(offset=o) for o in (40, 41)],
    }

    async def parent_getmany(self: object, active_partitions: object, timeout: float) -> object:
        if rebalance:
            consumer.app.consumer_generation_id += 1
        return batch

    monkeypatch.setattr(faust_aiokafka.Consumer, "_getmany", parent_getmany)
    monkeypatch.setattr(consumer, "_position", lambda tp: positions.get(tp.partition))
    return asyncio.run(consumer._getmany(set(batch), 1.0))


def test_a_batch_fetched_before_a_rebalance_is_not_delivered_after_a_seek_moved_its_partition(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    consumer = consumer_with_agent(tmp_path)
    # The rebalance made partition 0 an active one: its restore sought it to 0. Delivered, 725 would
    # be the highest offset faust's recovery has seen, and it would skip 0..724 (the sessions).
    # Partition 1 was not sought: the consumer's position is past the batch, which is delivered.
    with caplog.at_level(logging.WARNING):
        handed = fetch_across_a_rebalance(consumer, monkeypatch, {0: 0, 1: 42}, rebalance=True)
    assert isinstance(handed, dict) and [tp.partition for tp in handed] == [1]
    assert consumer.stale == 7
    assert "offsets 725..731 were fetched in consumer generation 0 and reached faust in 1" in caplog.text


def test_a_batch_within_one_generation_is_delivered_as_fetched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    consumer = consumer_with_agent(tmp_path)
    handed = fetch_across_a_rebalance(consumer, monkeypatch, {0: 0, 1: 0}, rebalance=False)
    assert isinstance(handed, dict) and sorted(tp.partition for tp in handed) == [0, 1]
    assert consumer.stale == 0
