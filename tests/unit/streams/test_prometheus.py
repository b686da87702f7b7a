"""/metrics: the Prometheus text of a process's meter provider, negotiated like Prometheus scrapes it."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from selective_autonomy.agents.metrics import RuntimeMetrics
from selective_autonomy.config import TelemetrySettings
from selective_autonomy.streams.meters import process_meters
from selective_autonomy.streams.prometheus import add_metrics_route

OPENMETRICS = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"


def test_the_process_meters_serve_the_worker_instruments_as_prometheus_text() -> None:
    meters = process_meters(TelemetrySettings(service_name="selauto-worker"))
    metrics = RuntimeMetrics(meter_provider=meters.provider)
    metrics.on_event()
    metrics.on_decision("execute", None, 12.0, "billing")
    metrics.on_decision("defer", "below_threshold", 40.0, "billing")

    body, content_type = meters.exposition.render()
    assert content_type.startswith("text/plain; version=0.0.4")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }
    assert samples[("selauto_events_total", ())] == 1
    assert samples[("selauto_decisions_total", (("outcome", "defer"), ("process", "billing")))] == 1
    assert samples[("selauto_decision_latency_milliseconds_count", (("outcome", "execute"),))] == 1
    assert samples[("selauto_decision_latency_milliseconds_sum", (("outcome", "defer"),))] == 40.0
    assert samples[("selauto_decision_latency_milliseconds_bucket", (("le", "25.0"), ("outcome", "execute")))] == 1
    assert ("selauto_automation_rate", ()) in samples
    [(_, target)] = [key for key in samples if key[0] == "target_info"]
    assert dict(target)["service_name"] == "selauto-worker"
    assert not [key for key in samples if "otel_scope_name" in dict(key[1])], "one scope: no scope labels"


def test_each_process_has_its_own_registry() -> None:
    first = process_meters(TelemetrySettings(service_name="a"))
    second = process_meters(TelemetrySettings(service_name="b"))
    RuntimeMetrics(meter_provider=first.provider).on_event()
    assert b"selauto_events_total 1.0" in first.exposition.render()[0]
    assert b"selauto_events" not in second.exposition.render()[0]


def test_the_route_serves_openmetrics_to_prometheus_and_text_to_curl() -> None:
    meters = process_meters(TelemetrySettings(service_name="x"))
    RuntimeMetrics(meter_provider=meters.provider).on_event()
    app = FastAPI(openapi_url="/openapi.json")
    add_metrics_route(app, meters.exposition)
    client = TestClient(app)

    plain = client.get("/metrics")
    assert plain.status_code == 200
    assert plain.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert "selauto_events_total 1.0" in plain.text

    scraped = client.get("/metrics", headers={"Accept": OPENMETRICS})
    assert scraped.headers["content-type"].startswith("application/openmetrics-text; version=1.0.0")
    assert scraped.text.rstrip().endswith("# EOF")
    assert "/metrics" not in client.get("/openapi.json").json()["paths"]
