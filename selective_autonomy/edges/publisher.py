"""A confluent-kafka producer whose sends are awaitable and resolve on the broker's acknowledgement.

:class:`~selective_autonomy.streams.producer.EventProducer` flushes everything at once, which suits
a batch job; a web handler needs to wait for *its* record only, with a bound. Here each send gets an
asyncio future, resolved from librdkafka's delivery report by a background poll thread.

The bound is librdkafka's own ``message.timeout.ms``: when it expires the library gives up on the
record and reports it failed, so a request answered "not delivered" leaves no record queued behind
it. (A record whose ack was lost in transit may still be on the topic; retrying it with the same
``event_id`` and ``state_version`` is harmless, since consumers deduplicate on them.)
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from selective_autonomy.config import Settings
from selective_autonomy.edges.errors import NotDelivered
from selective_autonomy.schemas.events import EventModel
from selective_autonomy.streams.kafka_config import confluent_config
from selective_autonomy.streams.serialization import AvroCodec, codec_for

_GRACE_S = 1.0
"""Extra wait past ``message.timeout.ms`` for the delivery report itself to arrive."""


@dataclass(frozen=True)
class Delivered:
    """Where the broker put a record."""

    topic: str
    partition: int
    offset: int


class AckingProducer:
    """Encodes contract events and produces them keyed by session; ``await send(...)`` returns on the ack.

    :param timeout_s: the longest a record may wait for its ack (librdkafka ``message.timeout.ms``).
    :param codec: the Avro codec; default :func:`codec_for` the settings.
    :param overrides: more librdkafka producer properties (they win).
    """

    def __init__(
        self, settings: Settings, *, timeout_s: float, codec: AvroCodec | None = None, **overrides: Any
    ) -> None:
        self.timeout_s = timeout_s
        self.codec = codec or codec_for(settings)
        conf = confluent_config(
            settings.kafka,
            "producer",
            **{
                "message.timeout.ms": max(1, int(timeout_s * 1000)),
                # Small batches: a webhook waits on its own record, not on a full batch.
                "linger.ms": 1,
                **overrides,
            },
        )
        self._producer = Producer(conf)
        self._closed = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start serving delivery reports (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve_reports, name="selauto-acks", daemon=True)
            self._thread.start()

    def _serve_reports(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.05)

    def encode(self, topic: str, event: EventModel) -> bytes:
        return self.codec.encode(event, topic)

    def send_nowait(
        self,
        topic: str,
        value: bytes,
        key: str | None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> asyncio.Future[Delivered]:
        """Queue one encoded record; the future resolves on its ack or fails with :class:`NotDelivered`."""
        self.start()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Delivered] = loop.create_future()

        def settle(error: KafkaError | None, message: Message) -> None:
            if future.done():
                return
            if error is not None:
                future.set_exception(NotDelivered(f"{topic}: {error.str()}"))
            else:
                future.set_result(Delivered(message.topic() or topic, message.partition() or 0, message.offset() or 0))

        def on_delivery(error: KafkaError | None, message: Message) -> None:
            # RuntimeError: the loop closed while the record was in flight; nobody waits any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(settle, error, message)

        record_headers: list[tuple[str, str | bytes | None]] = list(headers or [])
        try:
            self._producer.produce(
                topic,
                value=value,
                key=key.encode() if key is not None else None,
                headers=record_headers,
                on_delivery=on_delivery,
            )
        except BufferError as exc:
            future.set_exception(NotDelivered(f"{topic}: the local producer queue is full ({exc})"))
        except Exception as exc:  # KafkaException: unknown topic in a closed cluster, record too large...
            future.set_exception(NotDelivered(f"{topic}: {exc}"))
        return future

    async def wait(self, futures: list[asyncio.Future[Delivered]]) -> list[Delivered | NotDelivered]:
        """Each future's outcome, in order, within the bounded wait (a late one counts as not delivered)."""
        if not futures:
            return []
        _, pending = await asyncio.wait(futures, timeout=self.timeout_s + _GRACE_S)
        outcomes: list[Delivered | NotDelivered] = []
        for future in futures:
            if future in pending:
                future.cancel()
                outcomes.append(NotDelivered(f"no acknowledgement within {self.timeout_s} s"))
                continue
            error = future.exception()
            if error is None:
                outcomes.append(future.result())
            elif isinstance(error, NotDelivered):
                outcomes.append(error)
            else:
                outcomes.append(NotDelivered(str(error)))
        return outcomes

    async def send(
        self, topic: str, event: EventModel, key: str | None, headers: list[tuple[str, bytes]] | None = None
    ) -> Delivered:
        """Produce ``event`` and wait for the ack; raises :class:`NotDelivered`."""
        [outcome] = await self.wait([self.send_nowait(topic, self.encode(topic, event), key, headers)])
        if isinstance(outcome, NotDelivered):
            raise outcome
        return outcome

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop the report thread, deliver what is still queued (bounded), drop the rest and release the
        client: a flushed but open handle lives as long as whatever holds this object (an executor run's
        returned runner does) and keeps reconnecting to a broker that has gone away."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None
        if self._producer.flush(timeout_s):
            self._producer.purge()  # their senders were told NotDelivered when their wait ran out
        self._producer.close()
