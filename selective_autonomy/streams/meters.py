"""OpenTelemetry metrics: a meter provider exporting next to the traces.

The worker's instruments (events, decisions, deferral reasons, dead letters, decision latency,
automation rate, consumer lag, audits, demotions), the console's (deferrals waiting), the ingest's
and the executor's record into whatever meter provider they are given; without one they are no-ops.
Each ``selauto`` command builds its provider with :func:`process_meters`: OTLP to the collector of
the spans when one is set, and always a Prometheus reader behind the process's ``GET /metrics``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

from selective_autonomy.config import TelemetrySettings
from selective_autonomy.streams.prometheus import MetricsExposition

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


@dataclass(frozen=True)
class ProcessMeters:
    """A process's meter provider and the ``/metrics`` text of it."""

    provider: MeterProvider
    exposition: MetricsExposition


def process_meters(telemetry: TelemetrySettings, export_interval_s: float = 15.0) -> ProcessMeters:
    """The meters of one ``selauto`` process: Prometheus always (pulled at each scrape, so it costs
    nothing unscraped), OTLP and the console as the telemetry settings say."""
    exposition = MetricsExposition()
    provider = build_meter_provider(
        telemetry.service_name,
        telemetry.otlp_endpoint,
        telemetry.console,
        readers=[exposition.reader],
        export_interval_s=export_interval_s,
    )
    return ProcessMeters(provider, exposition)
