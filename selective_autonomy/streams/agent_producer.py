"""A confluent-kafka producer that an asyncio agent hands its records to, then waits for together.

The decide agent writes two records per state (the decision and the session table's update). Through
faust's producer each costs an aiokafka send in Python on the event loop: a future per record,
request building and response parsing in the sender task; with the tansu profile's batches of one,
a produce request per changelog record. This producer gives the records to librdkafka, which batches
and sends them from its own threads, and reports only failures (``delivery.report.only.error``), so
the event loop spends a few microseconds per record.

At-least-once: :meth:`AgentProducer.delivered` returns only once the broker has acknowledged every
record handed over so far, and raises if any was refused. An agent acks its input after that, never
before: the records it waits for include every one it produced for the events it is about to ack.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from selective_autonomy.config import KafkaSettings
from selective_autonomy.errors import BrokerError
from selective_autonomy.streams.kafka_config import confluent_config

log = logging.getLogger(__name__)

FLUSH_STEP_S = 1.0
"""How long one wait for acknowledgements blocks its thread before it checks again and logs."""


class AgentProducer:
    """Produces an agent's records with librdkafka; :meth:`delivered` waits for their acks.

    :param linger_ms: ``linger.ms``, how long librdkafka waits to fill a batch; :meth:`delivered`
        sends at once whatever is waiting, so this only matters between waits; default librdkafka's.
    :param name: names the thread that waits for acknowledgements.
    :param overrides: further librdkafka properties, applied last.
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        *,
        linger_ms: float | None = None,
        name: str = "agent",
        **overrides: Any,
    ) -> None:
        # The callback holds the failure list, not this object: librdkafka's handle keeps its
        # callbacks alive, and a reference back here would be a cycle the collector cannot break.
        self._failures = Failures()
        config: dict[str, Any] = {"delivery.report.only.error": True, "on_delivery": self._failures.record}
        if linger_ms is not None:
            config["linger.ms"] = linger_ms
        self.name = name
        self._producer = Producer(confluent_config(kafka, "producer", **config, **overrides))
        # flush() blocks until the queue is empty: it waits in a thread of its own, never on the loop.
        self._waiter = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{name}-acks")
        self.sent = 0

    def send(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] | None = None,
        partition: int | None = None,
    ) -> None:
        """Hand a record to librdkafka (no wait); ``partition`` None: the murmur2 partitioner's choice,
        the same as faust's and the Java client's for the same key."""
        kwargs: dict[str, Any] = {"value": value, "key": key}
        if headers:
            kwargs["headers"] = list(headers)
        if partition is not None:
            kwargs["partition"] = partition
        while True:
            try:
                self._producer.produce(topic, **kwargs)
                break
            except BufferError:
                # The local queue is full (queue.buffering.max.messages): let some records go out.
                self._producer.poll(0.05)
        self.sent += 1

    @property
    def in_flight(self) -> int:
        """Records handed over and not yet acknowledged, and reports (failures, client errors) not yet
        served: what a wait for acknowledgements waits out."""
        return len(self._producer)

    async def delivered(self) -> None:
        """Wait until the broker has acknowledged every record sent so far; records still waiting
        for a batch to fill go out at once.

        :raises BrokerError: a record was refused or timed out (``message.timeout.ms``).
        """
        if len(self._producer) and not self._failures.first:
            loop = asyncio.get_running_loop()
            waited = 0.0
            while await loop.run_in_executor(self._waiter, self._producer.flush, FLUSH_STEP_S):
                waited += FLUSH_STEP_S
                log.warning("%s: %d records not acknowledged after %.0f s", self.name, len(self._producer), waited)
        if self._failures.first:
            count, first = self._failures.take()
            raise BrokerError(f"{count} records were not delivered, first: {first}")

    def close(self, timeout_s: float = 5.0) -> None:
        """Send what is queued (waiting at most ``timeout_s``), drop the rest and stop; records not
        acknowledged belong to input that was not acked either, so it is read again."""
        remaining = self._producer.flush(timeout_s)
        if remaining:
            log.warning("%s: stopped with %d records not acknowledged", self.name, remaining)
            self._producer.purge()
        self._producer.close()
        self._waiter.shutdown(wait=False)


class Failures:
    """Delivery failures reported by librdkafka (only failures are: ``delivery.report.only.error``)."""

    def __init__(self) -> None:
        self.first: str | None = None
        self.count = 0

    def record(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self.count += 1
            self.first = self.first or f"{message.topic()}[{message.partition()}]: {error}"

    def take(self) -> tuple[int, str | None]:
        """The failures so far (how many, the first), forgotten from now on."""
        taken = (self.count, self.first)
        self.first, self.count = None, 0
        return taken
