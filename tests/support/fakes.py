"""In-memory stand-ins for the package's ports: a schema source, a record publisher and an event sink."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from selective_autonomy.edges.errors import NotDelivered
from selective_autonomy.edges.publisher import Delivered
from selective_autonomy.edges.records import Outgoing
from selective_autonomy.schemas.events import EventModel
from selective_autonomy.schemas.process import ProcessSchema


class Schemas:
    """A :class:`SchemaSource` over fixed schemas."""

    def __init__(self, *schemas: ProcessSchema) -> None:
        self.by_id = {s.process_id: s for s in schemas}

    def schema(self, process_id: str) -> ProcessSchema | None:
        return self.by_id.get(process_id)

    def processes(self) -> list[str]:
        return sorted(self.by_id)


class ListPublisher:
    """A :class:`RecordPublisher` that keeps records in a list, or fails every one of them."""

    def __init__(self, fail: bool = False) -> None:
        self.records: list[Outgoing] = []
        self.fail = fail
        self.started = False
        self.closed = False

    async def publish(self, records: Sequence[Outgoing]) -> list[Delivered | NotDelivered]:
        await asyncio.sleep(0)
        if self.fail:
            return [NotDelivered("Local: Message timed out") for _ in records]
        out: list[Delivered | NotDelivered] = []
        for record in records:
            self.records.append(record)
            out.append(Delivered(record.topic, 0, len(self.records) - 1))
        return out

    def start(self) -> None:
        self.started = True

    def close(self) -> None:
        self.closed = True


class ListSink:
    """An EventSink that keeps what it is given; ``fail`` makes flush raise like a broker timeout."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, EventModel, str | None, list[tuple[str, bytes]]]] = []
        self.flushes = 0
        self.fail = False

    def send(
        self, topic: str, event: EventModel, key: str | None = None, headers: list[tuple[str, bytes]] | None = None
    ) -> None:
        self.sent.append((topic, event, key, list(headers or [])))

    def flush(self, timeout_s: float = 30.0) -> None:
        self.flushes += 1
        if self.fail:
            self.sent.clear()
            raise TimeoutError("1 records were not delivered")

    def of(self, model: type[EventModel]) -> list[EventModel]:
        return [event for _, event, _, _ in self.sent if isinstance(event, model)]
