"""Everything the routers need, built once per app and kept on ``app.state.console``."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from selective_autonomy.config import ConsoleSettings, Settings
from selective_autonomy.console.answers import AnswerService
from selective_autonomy.console.audit_answers import AuditAnswerService
from selective_autonomy.console.audits import AuditBook
from selective_autonomy.console.auth import Authenticator
from selective_autonomy.console.catalog import SchemaCatalog
from selective_autonomy.console.controls import ConsoleControls
from selective_autonomy.console.errors import AnswerNotDelivered
from selective_autonomy.console.feed import KafkaInboxFeed
from selective_autonomy.console.inbox import Inbox
from selective_autonomy.console.live import Broadcaster
from selective_autonomy.console.service import InboxService
from selective_autonomy.console.sink import EventSink
from selective_autonomy.console.views import Views


@dataclass
class SinkHolder:
    """The event sink, given or created on first use (a Kafka producer) and closed at shutdown."""

    settings: Settings
    sink: EventSink | None = None
    owned: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self) -> EventSink:
        with self._lock:
            if self.sink is None:
                from selective_autonomy.streams.producer import EventProducer

                try:
                    self.sink = EventProducer(self.settings)
                except Exception as exc:  # a misconfigured client: refuse the answer, keep the console up
                    raise AnswerNotDelivered(f"no producer: {exc}") from exc
                self.owned = True
            return self.sink

    def close(self, timeout_s: float = 10.0) -> None:
        with self._lock:
            sink, owned = self.sink, self.owned
            if owned:  # dropped, so the producer's threads and connections go with it
                self.sink, self.owned = None, False
        if sink is not None and owned:
            sink.flush(timeout_s)


@dataclass
class ConsoleContext:
    settings: Settings
    config: ConsoleSettings
    inbox: Inbox
    catalog: SchemaCatalog
    reader: InboxService
    answers: AnswerService
    auth: Authenticator
    broadcaster: Broadcaster
    views: Views
    sinks: SinkHolder
    audits: AuditBook
    audit_answers: AuditAnswerService
    controls: ConsoleControls
    feed: KafkaInboxFeed | None = None
