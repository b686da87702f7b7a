"""Where the console's answers go: an :class:`EventSink`.

:class:`~selective_autonomy.streams.producer.EventProducer` is one as it is; unit tests use a list.
"""

from __future__ import annotations

from typing import Protocol

from selective_autonomy.schemas.events import EventModel


class EventSink(Protocol):
    """Sends contract events; ``flush`` returns once they are acknowledged, or raises."""

    def send(
        self, topic: str, event: EventModel, key: str | None = None, headers: list[tuple[str, bytes]] | None = None
    ) -> None: ...

    def flush(self, timeout_s: float = 30.0) -> None: ...
