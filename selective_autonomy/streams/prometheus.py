"""Prometheus exposition: ``GET /metrics`` of one process, next to its OTLP export.

Every selauto process (worker, console, ingest, executor) records its instruments into one
OpenTelemetry meter provider. A :class:`MetricsExposition` is one more reader on that provider: an
OpenTelemetry ``PrometheusMetricReader`` that collects when Prometheus scrapes (pull, so nothing runs
between scrapes) into a registry of its own. Its own registry, not ``prometheus_client``'s global
one: two apps in one process (the tests, the demo) never see each other's metrics.

Names follow the OpenTelemetry-to-Prometheus mapping: dots become underscores, counters end in
``_total``, a unit becomes a suffix (``selauto.decision.latency`` in ms is the histogram
``selauto_decision_latency_milliseconds``). The chart's alerts and dashboard query those names;
``tests/unit/deploy/test_monitoring.py`` checks that every one of them is exported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

if TYPE_CHECKING:
    from fastapi import FastAPI

SCRAPE_PATH = "/metrics"


class MetricsExposition:
    """The Prometheus text of the meter provider that :attr:`reader` belongs to.

    Pass :attr:`reader` to the meter provider (``build_meter_provider(readers=[...])``); a reader
    serves one provider only.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        # One instrumentation scope per process: the otel_scope_* labels would only repeat it on
        # every series.
        self.reader = PrometheusMetricReader(registry=self.registry, scope_info_enabled=False)

    def render(self, accept: str | None = None) -> tuple[bytes, str]:
        """The body and its content type: OpenMetrics when the scraper asks for it (Prometheus
        does), the Prometheus text format otherwise."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type


def add_metrics_route(app: FastAPI, exposition: MetricsExposition) -> None:
    """``GET /metrics`` on a FastAPI app (console, ingest, executor health), open like ``/healthz``
    and left out of the OpenAPI document."""
    from starlette.requests import Request
    from starlette.responses import Response

    # A plain function: Starlette runs it in its thread pool, so a scrape never holds the event
    # loop while the observable instruments are read. (Imported here: the worker serves the same
    # text from faust's web server and need not import FastAPI.)
    def metrics(request: Request) -> Response:
        body, content_type = exposition.render(request.headers.get("accept"))
        return Response(body, headers={"Content-Type": content_type})

    app.add_route(SCRAPE_PATH, metrics, methods=["GET"], include_in_schema=False)
