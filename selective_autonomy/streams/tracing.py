"""OpenTelemetry: tracer setup and trace context carried in Kafka record headers.

Every hop (ui.state -> decision -> deferral -> operator feedback -> next ui.state) extracts the
context from the incoming record's headers and injects its own span's context into the records it
produces, so one session reads as one trace in the user's tracing stack. Span attributes follow
the messaging semantic conventions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace import Span, SpanKind
from opentelemetry.util.types import Attributes

from selective_autonomy.config import TelemetrySettings

TRACER_NAME = "selective_autonomy"

Headers = Sequence[tuple[str, bytes]]


def build_tracer_provider(
    service_name: str,
    otlp_endpoint: str | None = None,
    console: bool = False,
    exporters: Iterable[SpanExporter] = (),
    processors: Iterable[SpanProcessor] = (),
) -> TracerProvider:
    """A tracer provider exporting over OTLP/HTTP when an endpoint is given, to the console when
    asked, and to any extra exporters (tests pass an in-memory one)."""
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    if otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_endpoint)))
    if console:
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    for exporter in exporters:
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor

        provider.add_span_processor(SimpleSpanProcessor(exporter))
    for processor in processors:
        provider.add_span_processor(processor)
    return provider


def process_tracer_provider(telemetry: TelemetrySettings) -> trace.TracerProvider:
    """The tracer provider of one ``selauto`` process: the SDK's, exporting, when the telemetry
    settings name an OTLP endpoint or the console; otherwise the API's no-op provider.

    Without an exporter the SDK would build and drop a span for every event (about 20 µs each in
    the decide agent: bench/README.md); :func:`consumer_span` then still carries each record's
    trace context on to what is written for it, so a session stays one trace downstream.
    """
    if telemetry.otlp_endpoint or telemetry.console:
        return build_tracer_provider(telemetry.service_name, telemetry.otlp_endpoint, telemetry.console)
    return trace.NoOpTracerProvider()


def consumer_span(tracer: trace.Tracer, name: str, parent: Context, attributes: Attributes) -> Span:
    """A span for processing one consumed record, child of ``parent`` (the record's trace context).

    A tracer that records nothing (no-op) gives an invalid span; the record's own span context is
    returned instead, so that records written under it (:func:`headers_for`) continue its trace.
    """
    span = tracer.start_span(name, context=parent, kind=SpanKind.CONSUMER, attributes=attributes)
    if span.get_span_context().is_valid:
        return span
    return trace.get_current_span(parent)


def context_from_headers(headers: Headers | Mapping[str, bytes] | None) -> Context:
    """The trace context in a record's headers (a list of pairs, or faust's dict)."""
    pairs = headers.items() if isinstance(headers, Mapping) else (headers or [])
    carrier = {key: value.decode("latin-1") for key, value in pairs if isinstance(value, bytes)}
    return propagate.extract(carrier)


def headers_for(span: Span | None = None) -> list[tuple[str, bytes]]:
    """W3C trace-context headers for the given span (or the current one)."""
    carrier: dict[str, str] = {}
    context = trace.set_span_in_context(span) if span is not None else None
    propagate.inject(carrier, context=context)
    return [(key, value.encode("latin-1")) for key, value in carrier.items()]


def messaging_attributes(
    topic: str, operation: str, key: bytes | None = None, partition: int | None = None, offset: int | None = None
) -> dict[str, str | int]:
    attributes: dict[str, str | int] = {
        "messaging.system": "kafka",
        "messaging.destination.name": topic,
        "messaging.operation.type": operation,
        "messaging.operation.name": operation,
    }
    if key is not None:
        attributes["messaging.kafka.message.key"] = key.decode("utf-8", "replace")
    if partition is not None:
        attributes["messaging.destination.partition.id"] = str(partition)
    if offset is not None:
        attributes["messaging.kafka.offset"] = offset
    return attributes
