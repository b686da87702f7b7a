"""A plain confluent-kafka consumer of contract events, for tools that read a topic to the end
(the demo's report, tests, the executor's bootstrap) rather than running as a faust agent."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition

from selective_autonomy.closing import ClosedOnExit
from selective_autonomy.config import Settings
from selective_autonomy.errors import BrokerError, DecodeError
from selective_autonomy.schemas.events import EventModel
from selective_autonomy.streams.kafka_config import confluent_config
from selective_autonomy.streams.serialization import AvroCodec, codec_for

E = TypeVar("E", bound=EventModel)


@dataclass(frozen=True)
class Received(Generic[E]):
    """A decoded record (``event``) or, when decoding failed, the reason (``error``)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    event: E | None
    error: DecodeError | None


class EventConsumer(ClosedOnExit, Generic[E]):
    """Consumes one contract from topics.

    With a ``group_id`` it joins that consumer group and commits only on :meth:`commit`. Without
    one it reads every partition from the beginning with no group at all: no join wait, nothing
    committed (readers such as reports and tests).
    """

    def __init__(
        self,
        settings: Settings,
        topics: list[str],
        model: type[E],
        group_id: str | None = None,
        codec: AvroCodec | None = None,
        **overrides: Any,
    ) -> None:
        conf = confluent_config(
            settings.kafka,
            "consumer",
            **{
                "group.id": group_id or f"selauto-reader-{uuid.uuid4().hex[:8]}",
                "enable.partition.eof": False,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                **overrides,
            },
        )
        self._consumer = Consumer(conf)
        if group_id is not None:
            self._consumer.subscribe(topics)
        else:
            self._consumer.assign(self._all_partitions(topics))
        self.model = model
        self.codec = codec or codec_for(settings)

    def _all_partitions(self, topics: list[str], timeout_s: float = 10.0) -> list[TopicPartition]:
        metadata = self._consumer.list_topics(timeout=timeout_s)
        partitions: list[TopicPartition] = []
        for topic in topics:
            if topic not in metadata.topics:
                raise BrokerError(f"topic {topic} does not exist")
            partitions += [TopicPartition(topic, p, OFFSET_BEGINNING) for p in metadata.topics[topic].partitions]
        return partitions

    def _wrap(self, message: Message) -> Received[E]:
        event: E | None = None
        error: DecodeError | None = None
        try:
            event = self.codec.decode(message.value(), self.model)
        except DecodeError as exc:
            error = exc
        raw_headers: list[tuple[str, str | bytes | None]] = list(message.headers() or [])  # type: ignore[arg-type]
        headers = [(k, v if isinstance(v, bytes) else (v or "").encode()) for k, v in raw_headers]
        return Received(
            message.topic() or "",
            message.partition() or 0,
            message.offset() or 0,
            message.key(),
            message.value(),
            headers,
            event,
            error,
        )

    def poll(self, timeout_s: float = 1.0) -> Received[E] | None:
        message = self._consumer.poll(timeout_s)
        if message is None:
            return None
        error = message.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                return None
            raise BrokerError(f"consume failed: {error}")
        return self._wrap(message)

    def iterate(self, idle_timeout_s: float = 2.0, max_records: int | None = None) -> Iterator[Received[E]]:
        """Records until none arrives for ``idle_timeout_s`` or ``max_records`` were read."""
        count = 0
        last = time.monotonic()
        while max_records is None or count < max_records:
            received = self.poll(0.2)
            if received is None:
                if time.monotonic() - last > idle_timeout_s:
                    return
                continue
            last = time.monotonic()
            count += 1
            yield received

    def take(self, count: int, timeout_s: float = 30.0) -> list[Received[E]]:
        """Exactly ``count`` records, or raise after ``timeout_s``."""
        out: list[Received[E]] = []
        deadline = time.monotonic() + timeout_s
        while len(out) < count:
            if time.monotonic() > deadline:
                raise BrokerError(f"only {len(out)} of {count} records arrived within {timeout_s} s")
            received = self.poll(0.2)
            if received is not None:
                out.append(received)
        return out

    def commit(self) -> None:
        self._consumer.commit(asynchronous=False)

    def close(self) -> None:
        self._consumer.close()
