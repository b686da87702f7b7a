"""The one interface both edges publish through, so that unit tests can swap Kafka for a list."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from selective_autonomy.edges.errors import NotDelivered
from selective_autonomy.edges.publisher import AckingProducer, Delivered
from selective_autonomy.schemas.events import EventModel


@dataclass(frozen=True)
class Outgoing:
    """One record to produce: a contract event keyed by session, with trace headers."""

    topic: str
    key: str
    event: EventModel
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    value: bytes | None = None
    """The event already encoded (the webhook encodes while validating); None: the publisher encodes it."""


class RecordPublisher(Protocol):
    """Publishes records and reports, per record and in order, the ack or why there was none."""

    async def publish(self, records: Sequence[Outgoing]) -> list[Delivered | NotDelivered]: ...

    def start(self) -> None: ...

    def close(self) -> None: ...


class KafkaPublisher:
    """:class:`RecordPublisher` over an :class:`AckingProducer`: everything is queued at once, then awaited."""

    def __init__(self, producer: AckingProducer) -> None:
        self.producer = producer

    async def publish(self, records: Sequence[Outgoing]) -> list[Delivered | NotDelivered]:
        futures = [
            self.producer.send_nowait(
                r.topic, r.value if r.value is not None else self.producer.encode(r.topic, r.event), r.key, r.headers
            )
            for r in records
        ]
        return await self.producer.wait(futures)

    def start(self) -> None:
        self.producer.start()

    def close(self) -> None:
        self.producer.close()


async def publish_all(publisher: RecordPublisher, records: Sequence[Outgoing]) -> list[Delivered]:
    """Publish ``records``; raises the first :class:`NotDelivered` if any record was not acknowledged."""
    outcomes = await publisher.publish(records)
    for outcome in outcomes:
        if isinstance(outcome, NotDelivered):
            raise outcome
    return [o for o in outcomes if isinstance(o, Delivered)]
