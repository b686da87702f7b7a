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
"""

from __future__ import annotations

import asyncio
from typing import Any

import faust
from faust.types.tuples import FutureMessage


class AcknowledgedTable(faust.Table[bytes, Any]):
    """A :class:`faust.Table` that remembers its changelog records until :meth:`written`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._unacknowledged: list[FutureMessage] = []

    def send_changelog(self, *args: Any, **kwargs: Any) -> FutureMessage:
        sent: FutureMessage = super().send_changelog(*args, **kwargs)
        self._unacknowledged.append(sent)
        return sent

    @property
    def unacknowledged(self) -> int:
        """Changelog records sent since the last :meth:`written` and not yet awaited."""
        return len(self._unacknowledged)

    async def written(self) -> None:
        """Wait until the broker acknowledged every changelog record sent so far.

        :raises Exception: the producer's error for a record that could not be written.
        """
        pending, self._unacknowledged = self._unacknowledged, []
        if pending:
            await asyncio.gather(*pending)


def add_acknowledged_table(app: faust.App, name: str, **options: Any) -> AcknowledgedTable:
    """``app.Table(name, **options)``, as an :class:`AcknowledgedTable`."""
    table = AcknowledgedTable(app, name=name, beacon=app.tables.beacon, **options)
    app.tables.add(table)
    return table
