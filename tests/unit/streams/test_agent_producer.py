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
    """Stands in for AgentProducer: keeps what is sent, acknowledges when told."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.acked = asyncio.Event()

    def send(self, topic: str, value: bytes | None, **kwargs: Any) -> None:
        self.sent.append({"topic": topic, "value": value, **kwargs})

    async def delivered(self) -> None:
        await self.acked.wait()


def test_changelog_records_go_through_the_agents_producer_and_are_awaited(tmp_path: Path) -> None:
    app = build_app(Settings(data_dir=tmp_path), app_id="write-through")
    table = add_acknowledged_table(app, "sessions", default=dict, key_type=bytes, partitions=2, use_partitioner=True)
    producer = FakeProducer()

    async def scenario() -> None:
        table.write_through(producer)  # type: ignore[arg-type]
        table.send_changelog(1, b"s1", {"last_state_version": 3})
        assert producer.sent == [
            {
                "topic": table.changelog_topic_name,
                "value": b'{"last_state_version":3}',  # faust's JSON, as its own producer would send
                "key": b"s1",
                "partition": 1,
                "headers": [],
            }
        ]
        assert table.unacknowledged == 1
        waiting = asyncio.ensure_future(table.written())
        await asyncio.sleep(0.01)
        assert not waiting.done()  # the broker has not acknowledged it
        producer.acked.set()
        await asyncio.wait_for(waiting, 1.0)
        assert table.unacknowledged == 0

    asyncio.run(scenario())
