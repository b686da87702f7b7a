"""On the embedded broker, the session table's changelog written through the agent's producer ends
every partition with a one-record batch, so its high watermark (what faust's recovery reads up to)
counts every record: see streams/tables.py."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from selective_autonomy.config import Settings
from selective_autonomy.streams.agent_producer import AgentProducer
from selective_autonomy.streams.app import build_app
from selective_autonomy.streams.kafka_config import confluent_config, tweaks_for
from selective_autonomy.streams.tables import add_acknowledged_table
from selective_autonomy.streams.topics import TopicSpec, ensure_topics

pytestmark = pytest.mark.integration


def stored(settings: Settings, topic: str, partitions: int) -> list[tuple[int, int, int]]:
    """(partition, high watermark, records readable) per partition."""
    consumer = Consumer(confluent_config(settings.kafka, "consumer", **{"group.id": "tail-check"}))
    try:
        out = []
        for partition in range(partitions):
            tp = TopicPartition(topic, partition, OFFSET_BEGINNING)
            _, high = consumer.get_watermark_offsets(tp, timeout=10, cached=False)
            consumer.assign([tp])
            count, idle = 0, 0
            while idle < 5:
                message = consumer.poll(0.2)
                if message is None or message.error() is not None:
                    idle += 1
                    continue
                count, idle = count + 1, 0
            out.append((partition, high, count))
        return out
    finally:
        consumer.close()


def test_every_changelog_partition_ends_readable_to_its_high_watermark(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(partitions=2)
    assert tweaks_for(settings.kafka).changelog_single_record_tail  # the embedded broker's profile
    app = build_app(settings)
    table = add_acknowledged_table(app, "sessions", default=dict, key_type=bytes, partitions=2, use_partitioner=True)
    ensure_topics(settings, [TopicSpec(table.changelog_topic_name, 2)])
    producer = AgentProducer(settings.kafka, name="test")
    table.write_through(producer, single_record_tail=True)

    async def write() -> None:
        for round_ in range(3):  # three batches of updates, as three decided batches would send
            for session in range(7):
                table.send_changelog(session % 2, f"s{session}".encode(), {"last_state_version": round_})
            await table.written()

    try:
        asyncio.run(write())
    finally:
        producer.close()
    for partition, high, readable in stored(settings, table.changelog_topic_name, 2):
        assert high == readable, f"partition {partition}: high watermark {high}, {readable} records readable"
        assert readable >= 3 * (4 if partition == 0 else 3)
