"""The agent's producer reports a record the broker never acknowledged; the session table's
changelog can go through it with faust's bytes and partition, and written() waits for it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from selective_autonomy.config import KafkaSettings, Settings
from selective_autonomy.errors import BrokerError
from selective_autonomy.streams.agent_producer import AgentProducer
from selective_autonomy.streams.app import build_app
from selective_autonomy.streams.tables import add_acknowledged_table


def test_a_record_that_is_never_acknowledged_fails_the_wait() -> None:
    # Nothing listens on the port: the record times out after message.timeout.ms.
    producer = AgentProducer(KafkaSettings(bootstrap_servers="127.0.0.1:9"), name="test", **{"message.timeout.ms": 300})
    producer.send("ui.state", b"value", key=b"s1")
    assert producer.in_flight >= 1  # the record (and maybe the connection error, queued for the app)

    async def wait() -> None:
        await asyncio.wait_for(producer.delivered(), 10)

    with pytest.raises(BrokerError, match="1 records were not delivered"):
        asyncio.run(wait())
    asyncio.run(wait())  # reported once: nothing left in flight
    producer.close(timeout_s=0.1)


class FakeProducer:
    """Stands in for AgentProducer: keeps what is sent, each wait for acknowledgements returns when told."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.waits: list[int] = []  # records sent when each wait began
        self.acked = asyncio.Event()

    def send(self, topic: str, value: bytes | None, **kwargs: Any) -> None:
        self.sent.append({"topic": topic, "value": value, **kwargs})

    async def delivered(self) -> None:
        self.waits.append(len(self.sent))
        await self.acked.wait()


def table_through(tmp_path: Path, producer: FakeProducer, single_record_tail: bool) -> Any:
    app = build_app(Settings(data_dir=tmp_path), app_id="write-through")
    table = add_acknowledged_table(app, "sessions", default=dict, key_type=bytes, partitions=2, use_partitioner=True)
    table.write_through(producer, single_record_tail=single_record_tail)  # type: ignore[arg-type]
    return table


def test_changelog_records_go_through_the_agents_producer_when_written(tmp_path: Path) -> None:
    producer = FakeProducer()
    table = table_through(tmp_path, producer, single_record_tail=False)

    async def scenario() -> None:
        table.send_changelog(1, b"s1", {"last_state_version": 3})
        assert producer.sent == [] and table.unacknowledged == 1  # kept until written()
        waiting = asyncio.ensure_future(table.written())
        await asyncio.sleep(0.01)
        assert producer.sent == [
            {
                "topic": table.changelog_topic_name,
                "value": b'{"last_state_version":3}',  # faust's JSON, as its own producer would send
                "key": b"s1",
                "partition": 1,
                "headers": None,
            }
        ]
        assert not waiting.done()  # the broker has not acknowledged it
        producer.acked.set()
        await asyncio.wait_for(waiting, 1.0)
        assert table.unacknowledged == 0 and producer.waits == [1]

    asyncio.run(scenario())


def test_each_partition_that_got_several_records_ends_with_its_last_one_alone(tmp_path: Path) -> None:
    producer = FakeProducer()
    producer.acked.set()
    table = table_through(tmp_path, producer, single_record_tail=True)

    async def scenario() -> None:
        for partition, key, version in ((0, b"a", 1), (1, b"b", 1), (0, b"c", 1), (0, b"a", 2)):
            table.send_changelog(partition, key, {"last_state_version": version})
        await table.written()

    asyncio.run(scenario())
    sent = [(r["partition"], r["key"], r["value"]) for r in producer.sent]
    assert sent[:4] == [
        (0, b"a", b'{"last_state_version":1}'),
        (1, b"b", b'{"last_state_version":1}'),
        (0, b"c", b'{"last_state_version":1}'),
        (0, b"a", b'{"last_state_version":2}'),
    ]
    # Partition 0 got three records: its last one again, after the others were acknowledged;
    # partition 1 got one, a batch of one already.
    assert sent[4:] == [(0, b"a", b'{"last_state_version":2}')]
    assert producer.waits == [4, 5]
