"""The ingest's metrics: observable counters over :class:`IngestCounters` (the numbers ``/healthz``
shows), so the request path records nothing twice."""

from __future__ import annotations

from opentelemetry import metrics

from selective_autonomy.edges.ingest.service import IngestCounters


def register_ingest_meters(counters: IngestCounters, meter_provider: metrics.MeterProvider | None = None) -> None:
    """Instruments reading ``counters`` on ``meter_provider`` (default: the global one)."""
    meter = metrics.get_meter("selective_autonomy", meter_provider=meter_provider)
    meter.create_observable_counter(
        "selauto.ingest.events",
        callbacks=[
            lambda _options: [
                metrics.Observation(counters.accepted, {"result": "accepted"}),
                metrics.Observation(counters.not_delivered, {"result": "not_delivered"}),
            ]
        ],
        unit="{event}",
        description="UI states received: published to ui.state (accepted) or not acknowledged by the broker",
    )
    meter.create_observable_counter(
        "selauto.ingest.refused",
        callbacks=[lambda _options: [metrics.Observation(counters.refused)]],
        unit="{request}",
        description="requests refused: unauthenticated, malformed, too large or invalid",
    )
