"""OpenTelemetry metrics: a meter provider exporting next to the traces.

The worker's instruments (events, decisions, deferral reasons, dead letters, decision latency,
automation rate, consumer lag) record into whatever meter provider they are given; without one
they are no-ops. ``selauto worker`` builds this provider from the telemetry settings, so the
metrics reach the same collector as the spans.
"""

from __future__ import annotations

from collections.abc import Iterable

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

TRACES_PATH = "/v1/traces"
METRICS_PATH = "/v1/metrics"


def metrics_endpoint(traces_endpoint: str) -> str:
    """The OTLP/HTTP metrics URL of the collector that ``traces_endpoint`` points at.

    The telemetry setting names the traces URL (``.../v1/traces``, what the span exporter posts
    to); a bare collector URL is accepted too.
    """
    base = traces_endpoint.rstrip("/")
    if base.endswith(TRACES_PATH):
        base = base[: -len(TRACES_PATH)]
    return base + METRICS_PATH


def build_meter_provider(
    service_name: str,
    otlp_endpoint: str | None = None,
    console: bool = False,
    readers: Iterable[MetricReader] = (),
    export_interval_s: float = 15.0,
) -> MeterProvider:
    """A meter provider exporting over OTLP/HTTP when the traces endpoint is set, to the console
    when asked, and to any extra readers (tests pass an in-memory one)."""
    all_readers = list(readers)
    interval_ms = export_interval_s * 1000.0
    if otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        exporter = OTLPMetricExporter(endpoint=metrics_endpoint(otlp_endpoint))
        all_readers.append(PeriodicExportingMetricReader(exporter, export_interval_millis=interval_ms))
    if console:
        all_readers.append(PeriodicExportingMetricReader(ConsoleMetricExporter(), export_interval_millis=interval_ms))
    return MeterProvider(resource=Resource.create({"service.name": service_name}), metric_readers=all_readers)
