"""The worker's metrics reach the meter provider they are given, lag included."""

from __future__ import annotations

from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from selective_autonomy.agents.metrics import RuntimeMetrics
from selective_autonomy.streams.lag import PartitionLag
from selective_autonomy.streams.meters import build_meter_provider, metrics_endpoint


def test_metrics_go_to_the_collector_of_the_traces_endpoint() -> None:
    assert metrics_endpoint("http://otel:4318/v1/traces") == "http://otel:4318/v1/metrics"
    assert metrics_endpoint("http://otel:4318/v1/traces/") == "http://otel:4318/v1/metrics"
    assert metrics_endpoint("http://otel:4318") == "http://otel:4318/v1/metrics"
    assert metrics_endpoint("https://collector.example/otlp/") == "https://collector.example/otlp/v1/metrics"


def points(reader: InMemoryMetricReader) -> dict[str, list[tuple[dict[str, object], float]]]:
    data = reader.get_metrics_data()
    assert data is not None
    found: dict[str, list[tuple[dict[str, object], float]]] = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    value = getattr(point, "value", None)
                    found.setdefault(metric.name, []).append(
                        (dict(point.attributes or {}), value if value is not None else point.count)  # type: ignore[attr-defined]
                    )
    return found


def test_runtime_metrics_record_into_the_given_provider() -> None:
    reader = InMemoryMetricReader()
    metrics = RuntimeMetrics(meter_provider=build_meter_provider("test", readers=[reader]))
    for _ in range(3):
        metrics.on_event()
    metrics.on_decision("execute", None, 12.0, "billing")
    metrics.on_decision("execute", None, 14.0, "billing")
    metrics.on_decision("defer", "below_threshold", 30.0, "billing")
    metrics.on_consumer_lag(
        [
            PartitionLag(topic="ui.state", partition=0, committed=40, earliest=0, high_watermark=47),
            PartitionLag(topic="ui.state", partition=1, committed=None, earliest=5, high_watermark=9),
        ]
    )

    found = points(reader)
    assert found["selauto.events"] == [({}, 3)]
    decisions = {attrs["outcome"]: value for attrs, value in found["selauto.decisions"]}
    assert decisions == {"execute": 2, "defer": 1}
    assert found["selauto.deferrals"] == [({"reason": "below_threshold", "process": "billing"}, 1)]
    assert sum(count for _, count in found["selauto.decision.latency"]) == 3
    [(_, rate)] = found["selauto.automation_rate"]
    assert abs(rate - 2 / 3) < 1e-9
    lag = {attrs["messaging.destination.partition.id"]: value for attrs, value in found["selauto.consumer.lag"]}
    assert lag == {"0": 7, "1": 4}
    snapshot = metrics.snapshot()
    assert snapshot["consumer_lag"] == {"ui.state[0]": 7, "ui.state[1]": 4}
    assert snapshot["consumer_lag_note"] is None


def test_a_failed_lag_read_keeps_the_last_reading_and_says_why() -> None:
    metrics = RuntimeMetrics(meter_provider=build_meter_provider("test"))
    reading = [PartitionLag(topic="t", partition=0, committed=3, earliest=0, high_watermark=5)]
    metrics.on_consumer_lag(reading)
    metrics.on_consumer_lag(None, "last read failed: timed out")
    assert metrics.consumer_lag == reading
    assert metrics.snapshot()["consumer_lag_note"] == "last read failed: timed out"


def test_lag_counts_from_the_earliest_kept_record() -> None:
    assert PartitionLag(topic="t", partition=0, committed=None, earliest=10, high_watermark=25).lag == 15
    # Records before the committed offset were deleted by retention: count from what is kept.
    assert PartitionLag(topic="t", partition=0, committed=3, earliest=10, high_watermark=25).lag == 15
    assert PartitionLag(topic="t", partition=0, committed=25, earliest=10, high_watermark=25).lag == 0
