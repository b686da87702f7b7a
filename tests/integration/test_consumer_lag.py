"""Consumer lag read from the real broker: committed offsets against the high watermark."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from selective_autonomy.agents.metrics import RuntimeMetrics
from selective_autonomy.agents.worker import refresh_consumer_lag
from selective_autonomy.config import KafkaSettings, Settings
from selective_autonomy.errors import BrokerError
from selective_autonomy.streams.broker import free_port
from selective_autonomy.streams.kafka_config import confluent_config
from selective_autonomy.streams.lag import ConsumerLagReader
from selective_autonomy.streams.meters import build_meter_provider

pytestmark = pytest.mark.integration

GROUP = "lag-readers"


def produce(settings: Settings, topic: str, counts: dict[int, int]) -> None:
    producer = Producer(confluent_config(settings.kafka, "producer"))
    for partition, count in counts.items():
        for i in range(count):
            producer.produce(topic, key=f"s{i}", value=b"{}", partition=partition)
            # One record per batch: the embedded broker's high watermark is right only then.
            producer.flush(10)


def commit(settings: Settings, topic: str, offsets: dict[int, int]) -> None:
    consumer = Consumer(confluent_config(settings.kafka, "consumer", **{"group.id": GROUP}))
    try:
        consumer.commit(offsets=[TopicPartition(topic, p, o) for p, o in offsets.items()], asynchronous=False)
    finally:
        consumer.close()


def test_lag_is_the_high_watermark_minus_the_committed_offset(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(partitions=2)
    topic = settings.topics.ui_state
    produce(settings, topic, {0: 7, 1: 3})
    commit(settings, topic, {0: 4})

    reader = ConsumerLagReader(settings.kafka, GROUP, [topic, "no.such.topic"])
    by_partition = {p.partition: p for p in reader.read()}
    assert set(by_partition) == {0, 1}
    assert (by_partition[0].committed, by_partition[0].high_watermark, by_partition[0].lag) == (4, 7, 3)
    assert (by_partition[1].committed, by_partition[1].high_watermark, by_partition[1].lag) == (None, 3, 3)

    metrics = RuntimeMetrics(meter_provider=build_meter_provider("test"))
    asyncio.run(refresh_consumer_lag(reader, metrics))
    assert metrics.snapshot()["consumer_lag"] == {f"{topic}[0]": 3, f"{topic}[1]": 3}

    commit(settings, topic, {0: 7, 1: 3})
    asyncio.run(refresh_consumer_lag(reader, metrics))
    assert metrics.snapshot()["consumer_lag"] == {f"{topic}[0]": 0, f"{topic}[1]": 0}
    assert metrics.consumer_lag_note is None

    # A broker that does not answer leaves the last reading and says why.
    gone = KafkaSettings(bootstrap_servers=f"127.0.0.1:{free_port()}")
    unreachable = ConsumerLagReader(gone, GROUP, [topic], timeout_s=1.0)
    with pytest.raises(BrokerError, match="consumer lag"):
        unreachable.read()
    asyncio.run(refresh_consumer_lag(unreachable, metrics))
    assert metrics.snapshot()["consumer_lag"] == {f"{topic}[0]": 0, f"{topic}[1]": 0}
    assert metrics.consumer_lag_note is not None and metrics.consumer_lag_note.startswith("last read failed")
