"""A faust table whose changelog writes an agent can wait for before it acknowledges its events.

faust sends a table's changelog records through its producer buffer and flushes that buffer
before it commits offsets, but the flush gives up as soon as one record takes longer than 0.1 s
to be handed to the client (``ProducerBuffer.flush_atmost``), and so does the flush when the
worker stops. On the embedded broker, where changelog records go one per batch and each waits
for the previous one's round trip, a busy broker makes that common: offsets were committed while
the session table's update was still in the buffer, a stop dropped it, and the state, sent again,
was decided again (the chaos test, once in a fresh-clone CI run: 4,001 records for 4,000 states
after sending every state again). The same lost update undercounts a session's unattended steps
for its guardrail. :class:`AcknowledgedTable` keeps the futures of its changelog records, so the
agent acks an event only once the broker has acknowledged the table update that decided it.

The agent can also have the changelog records sent through its own producer
(:meth:`AcknowledgedTable.write_through`, :mod:`selective_autonomy.streams.agent_producer`): the
same bytes to the same partition, serialised and partitioned by faust as before, but handed to
librdkafka instead of faust's aiokafka producer; :meth:`AcknowledgedTable.written` then waits for
that producer's acknowledgements.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import faust
from faust.types.tuples import FutureMessage

from selective_autonomy.streams.agent_producer import AgentProducer


class AcknowledgedTable(faust.Table[bytes, Any]):
    """A :class:`faust.Table` that remembers its changelog records until :meth:`written`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._unacknowledged: list[FutureMessage] = []
        self._producer: AgentProducer | None = None
        self._through_producer = 0

    def write_through(self, producer: AgentProducer | None) -> None:
        """Send changelog records through ``producer`` from now on (None: faust's producer again).

        Only for a store that keeps no offsets of its own (faust's in-memory store): faust's
        callback that records a changelog record's offset in a persistent store does not run for
        these records.
        """
        self._producer = producer

    def send_changelog(
        self,
        partition: int | None,
        key: Any,
        value: Any,
        key_serializer: Any = None,
        value_serializer: Any = None,
    ) -> FutureMessage:
        producer = self._producer
        if producer is None:
            sent: FutureMessage = super().send_changelog(partition, key, value, key_serializer, value_serializer)
            self._unacknowledged.append(sent)
            return sent
        # faust's own serialisation and partitioning (what send_changelog hands to its producer),
        # then librdkafka instead of aiokafka. The future is only read for its partition (faust's
        # on_key_set); the acknowledgement is the producer's, awaited in written().
        future = self.changelog_topic.as_future_message(
            key=key,
            value=value,
            partition=partition,
            key_serializer=key_serializer if key_serializer is not None else self.key_serializer,
            value_serializer=value_serializer if value_serializer is not None else self.value_serializer,
            eager_partitioning=True,
        )
        message = future.message
        headers = message.headers
        producer.send(
            self.changelog_topic_name,
            message.value,
            key=message.key,
            partition=message.partition,
            headers=list(headers.items()) if isinstance(headers, Mapping) else headers,
        )
        self._through_producer += 1
        return future

    @property
    def unacknowledged(self) -> int:
        """Changelog records sent since the last :meth:`written` and not yet awaited."""
        return len(self._unacknowledged) + self._through_producer

    async def written(self) -> None:
        """Wait until the broker acknowledged every changelog record sent so far.

        :raises Exception: the producer's error for a record that could not be written.
        """
        pending, self._unacknowledged = self._unacknowledged, []
        if pending:
            await asyncio.gather(*pending)
        if self._producer is not None:
            # Every record the producer holds, not a count of ours: a wait that began before some of
            # them were sent may have taken the count, and must not let this one return early.
            self._through_producer = 0
            await self._producer.delivered()


def add_acknowledged_table(app: faust.App, name: str, **options: Any) -> AcknowledgedTable:
    """``app.Table(name, **options)``, as an :class:`AcknowledgedTable`."""
    table = AcknowledgedTable(app, name=name, beacon=app.tables.beacon, **options)
    app.tables.add(table)
    return table
