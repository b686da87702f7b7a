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
same bytes to the same partition, serialised and partitioned by faust as before, but kept until
:meth:`AcknowledgedTable.written` hands them to librdkafka together and waits for their
acknowledgement. The table's local state changes at once, as with faust's own path.

Tansu (the embedded broker) reports a partition's high watermark wrong when its last batch holds
several records (the base offset plus one), and faust's recovery reads a changelog only up to the
high watermark: a restarted worker would miss the last records of its session table. faust's own
path sends each changelog record in a batch of its own (``ChangelogSingletonProducer``), a produce
round trip per record. With ``single_record_tail`` the records go in normal batches instead, and
then the last record of each partition that received several is sent once more, alone: every
partition written to ends with a one-record batch, so the watermark is right again (measured on
Tansu 0.6: a batch of 5 leaves it at 1, a single record after it at 6). Sending a record again
writes the same key and value, so the table's content is unchanged. A stop between the two sends
leaves a batch's last records past the watermark; none of their events was acked (that waits for
both sends), so they are read again and decided again, or skipped where the recovered table holds
their update.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import faust
from faust.types.tuples import FutureMessage

from selective_autonomy.streams.agent_producer import AgentProducer


@dataclass(frozen=True)
class ChangelogRecord:
    key: bytes | None
    value: bytes | None
    partition: int
    headers: list[tuple[str, bytes]] | None


class AcknowledgedTable(faust.Table[bytes, Any]):
    """A :class:`faust.Table` that remembers its changelog records until :meth:`written`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._unacknowledged: list[FutureMessage] = []
        self._producer: AgentProducer | None = None
        self._single_record_tail = False
        self._pending: list[ChangelogRecord] = []
        self._writing = asyncio.Lock()  # one written() at a time: see the single-record tail

    def write_through(self, producer: AgentProducer | None, *, single_record_tail: bool = False) -> None:
        """Send changelog records through ``producer`` from now on, at each :meth:`written` (None:
        faust's producer again, at once).

        Only for a store that keeps no offsets of its own (faust's in-memory store): faust's
        callback that records a changelog record's offset in a persistent store does not run for
        these records.

        :param single_record_tail: end every partition written to with a one-record batch (the
            broker profile's ``changelog_single_record_tail``; see the module docstring); default off.
        """
        self._producer = producer
        self._single_record_tail = single_record_tail

    def send_changelog(
        self,
        partition: int | None,
        key: Any,
        value: Any,
        key_serializer: Any = None,
        value_serializer: Any = None,
    ) -> FutureMessage:
        if self._producer is None:
            sent: FutureMessage = super().send_changelog(partition, key, value, key_serializer, value_serializer)
            self._unacknowledged.append(sent)
            return sent
        # faust's own serialisation and partitioning (what send_changelog hands to its producer).
        # The future is only read for its partition (faust's on_key_set); the record is sent and
        # acknowledged in written().
        future = self.changelog_topic.as_future_message(
            key=key,
            value=value,
            partition=partition,
            key_serializer=key_serializer if key_serializer is not None else self.key_serializer,
            value_serializer=value_serializer if value_serializer is not None else self.value_serializer,
            eager_partitioning=True,
        )
        message = future.message
        headers = list(message.headers.items()) if isinstance(message.headers, Mapping) else message.headers
        if message.partition is None:  # eager partitioning chose one, so this is a faust change
            raise RuntimeError(f"changelog record for {message.key!r} has no partition")
        self._pending.append(ChangelogRecord(message.key, message.value, message.partition, headers or None))
        return future

    @property
    def unacknowledged(self) -> int:
        """Changelog records sent (or kept to send) since the last :meth:`written` began."""
        return len(self._unacknowledged) + len(self._pending)

    async def written(self) -> None:
        """Send the changelog records kept so far (write-through) and wait until the broker
        acknowledged every changelog record sent so far.

        :raises Exception: the producer's error for a record that could not be written.
        """
        pending, self._unacknowledged = self._unacknowledged, []
        if pending:
            await asyncio.gather(*pending)
        producer = self._producer
        if producer is None:
            return
        async with self._writing:
            records, self._pending = self._pending, []
            self._send(producer, records)
            await producer.delivered()
            if self._single_record_tail:
                last: dict[int, ChangelogRecord] = {}
                count: dict[int, int] = {}
                for record in records:
                    last[record.partition] = record
                    count[record.partition] = count.get(record.partition, 0) + 1
                tail = [record for partition, record in last.items() if count[partition] > 1]
                if tail:
                    # Only written() sends through the producer, one at a time: each of these
                    # records is alone in its partition's queue, so it goes in a batch of its own.
                    self._send(producer, tail)
                    await producer.delivered()

    def _send(self, producer: AgentProducer, records: list[ChangelogRecord]) -> None:
        topic = self.changelog_topic_name
        for record in records:
            producer.send(topic, record.value, key=record.key, partition=record.partition, headers=record.headers)


def add_acknowledged_table(app: faust.App, name: str, **options: Any) -> AcknowledgedTable:
    """``app.Table(name, **options)``, as an :class:`AcknowledgedTable`."""
    table = AcknowledgedTable(app, name=name, beacon=app.tables.beacon, **options)
    app.tables.add(table)
    return table
