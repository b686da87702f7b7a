"""Publishing an answer's records: keyed by session, in a producer span that continues the trace of
the record being answered, acknowledged by the broker before the answer counts.

Deferral answers and audit answers share one :class:`Delivery`, so one answer is sent at a time
and a delivery error belongs to the answer that caused it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

from opentelemetry import trace
from opentelemetry.trace import SpanKind
from opentelemetry.util.types import AttributeValue

from selective_autonomy.config import TopicSettings
from selective_autonomy.console.sink import EventSink
from selective_autonomy.schemas.events import EventModel
from selective_autonomy.streams.tracing import TRACER_NAME, context_from_headers, headers_for

TRACE_HEADERS = frozenset({"traceparent", "tracestate", "baggage"})


class Delivery:
    """Sends records through the sink and waits for the acknowledgement.

    :param timeout_s: longest wait for the broker's acknowledgement; default 10 s.
    """

    def __init__(
        self,
        sink: Callable[[], EventSink],
        topics: TopicSettings,
        tracer_provider: trace.TracerProvider | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        self._sink = sink
        self.topics = topics
        self.tracer = trace.get_tracer(TRACER_NAME, tracer_provider=tracer_provider)
        self.timeout_s = timeout_s
        self._send_lock = threading.Lock()

    def publish(
        self,
        session_id: str,
        parent_headers: Iterable[tuple[str, bytes]],
        records: list[tuple[str, EventModel]],
        attributes: dict[str, AttributeValue],
    ) -> None:
        """Send ``records`` (topic, event) keyed by ``session_id`` and wait for the broker; raises when
        they were not acknowledged."""
        parent_list = list(parent_headers)
        with self.tracer.start_as_current_span(
            f"{self.topics.copilot_feedback} publish",
            context=context_from_headers(parent_list),
            kind=SpanKind.PRODUCER,
            attributes=attributes,
        ) as span:
            headers = headers_for(span) or [(k, v) for k, v in parent_list if k in TRACE_HEADERS]
            sink = self._sink()
            # One answer at a time: a delivery error then belongs to the answer that caused it.
            with self._send_lock:
                for topic, event in records:
                    sink.send(topic, event, key=session_id, headers=headers)
                sink.flush(self.timeout_s)

    def announce(self, records: list[tuple[str, EventModel, str]]) -> None:
        """Send (topic, event, key) records that answer no record (a stage set by hand) and wait for
        the broker; raises when they were not acknowledged."""
        sink = self._sink()
        with self._send_lock:  # as for answers: a delivery error belongs to the records that caused it
            for topic, event, key in records:
                sink.send(topic, event, key=key)
            sink.flush(self.timeout_s)
