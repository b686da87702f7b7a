"""Trace context goes on from a consumed record to what is written for it: through a recorded span
when spans are exported, and unchanged when nothing exports them (no span is built then)."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from selective_autonomy.config import TelemetrySettings
from selective_autonomy.streams.tracing import (
    build_tracer_provider,
    consumer_span,
    context_from_headers,
    headers_for,
    process_tracer_provider,
)


def upstream_headers() -> tuple[list[tuple[str, bytes]], trace.SpanContext]:
    provider = build_tracer_provider("platform", exporters=[InMemorySpanExporter()])
    with provider.get_tracer("platform").start_as_current_span("publish") as span:
        return headers_for(span), span.get_span_context()


def traceparent(headers: list[tuple[str, bytes]]) -> list[str]:
    return dict(headers)["traceparent"].decode().split("-")


def test_spans_are_built_only_where_something_exports_them() -> None:
    assert isinstance(process_tracer_provider(TelemetrySettings()), trace.NoOpTracerProvider)
    assert isinstance(process_tracer_provider(TelemetrySettings(console=True)), TracerProvider)
    exporting = TelemetrySettings(otlp_endpoint="http://otel:4318/v1/traces")
    assert isinstance(process_tracer_provider(exporting), TracerProvider)


def test_without_an_exporter_the_records_trace_context_goes_on_unchanged() -> None:
    headers, upstream = upstream_headers()
    tracer = process_tracer_provider(TelemetrySettings()).get_tracer("worker")
    span = consumer_span(tracer, "ui.state process", context_from_headers(headers), {"messaging.system": "kafka"})
    assert (span.get_span_context().trace_id, span.get_span_context().span_id) == (upstream.trace_id, upstream.span_id)
    assert headers_for(span) == headers
    # No trace context in, none out.
    assert headers_for(consumer_span(tracer, "ui.state process", context_from_headers([]), {})) == []


def test_with_an_exporter_the_span_is_recorded_as_a_child_of_the_record() -> None:
    headers, upstream = upstream_headers()
    exporter = InMemorySpanExporter()
    tracer = build_tracer_provider("worker", exporters=[exporter]).get_tracer("worker")
    span = consumer_span(tracer, "ui.state process", context_from_headers(headers), {"messaging.system": "kafka"})
    span.end()
    [finished] = exporter.get_finished_spans()
    assert finished.parent is not None and finished.parent.span_id == upstream.span_id
    assert finished.attributes is not None and finished.attributes["messaging.system"] == "kafka"
    out = traceparent(headers_for(span))
    assert out[1] == f"{upstream.trace_id:032x}" and out[2] == f"{finished.context.span_id:016x}"
