"""The worker's metrics reach the meter provider they are given: lag, audits and demotions included."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from selective_autonomy.agents.metrics import RuntimeMetrics
from selective_autonomy.schemas.event_parts import Action, Verdict
from selective_autonomy.schemas.events import CopilotFeedback
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


def feedback(verdict: Verdict, audit: bool, probability: float | None = None) -> CopilotFeedback:
    action = Action(action_type="lookup_order")
    return CopilotFeedback(
        deferral_id=None if audit else "d1",
        session_id="s1",
        process_id="billing",
        business_cluster="retail",
        state_version=1,
        suggestion=action,
        suggestion_action_id="a1",
        verdict=verdict,
        operator_action=None if verdict is Verdict.accepted else action,
        operator_id="op1",
        latency_ms=500,
        inclusion_probability=probability,
    )


def test_audits_are_counted_and_weighted_by_their_sampling_probability() -> None:
    reader = InMemoryMetricReader()
    metrics = RuntimeMetrics(meter_provider=build_meter_provider("test", readers=[reader]))
    metrics.on_feedback(feedback(Verdict.accepted, audit=True, probability=0.05))
    metrics.on_feedback(feedback(Verdict.accepted, audit=True, probability=0.5))
    metrics.on_feedback(feedback(Verdict.corrected, audit=True, probability=0.5))
    metrics.on_feedback(feedback(Verdict.corrected, audit=False))  # an answer to a deferral: not an audit

    found = points(reader)
    counts = {attrs["verdict"]: value for attrs, value in found["selauto.audits"]}
    assert counts == {"accepted": 2, "corrected": 1}
    weights = {attrs["verdict"]: value for attrs, value in found["selauto.audits.weighted"]}
    assert weights == {"accepted": pytest.approx(22.0), "corrected": pytest.approx(2.0)}
    # The realised precision the dashboard shows: 22 / 24, not the unweighted 2 / 3.
    assert {attrs["cluster"] for attrs, _ in found["selauto.audits"]} == {"retail"}
    assert metrics.feedback == {"accepted": 2, "corrected": 2}


def test_demotion_series_start_at_zero_for_every_cluster() -> None:
    reader = InMemoryMetricReader()
    metrics = RuntimeMetrics(meter_provider=build_meter_provider("test", readers=[reader]))
    metrics.on_stages("billing", ["retail", "vip", "*"], [])
    assert {attrs["cluster"]: value for attrs, value in points(reader)["selauto.stage.demotions"]} == {
        "retail": 0,
        "vip": 0,
        "*": 0,
    }
    metrics.on_stages("billing", ["retail", "vip", "*"], ["vip"])
    assert {attrs["cluster"]: value for attrs, value in points(reader)["selauto.stage.demotions"]} == {
        "retail": 0,
        "vip": 1,
        "*": 0,
    }


def test_batch_timing_is_summed_and_recorded_per_part() -> None:
    reader = InMemoryMetricReader()
    metrics = RuntimeMetrics(meter_provider=build_meter_provider("test", readers=[reader]))
    metrics.on_batch(64, 0.030, 0.010, 0.012, 0.006)
    metrics.on_batch(3, 0.010, 0.002, 0.004, 0.002)

    timing = metrics.snapshot()["batches"]
    assert isinstance(timing, dict)
    assert timing["batches"] == 2 and timing["events"] == 67 and timing["mean_size"] == 33.5
    assert timing["mean_ms"] == 20.0 and timing["mean_models_ms"] == 6.0 and timing["mean_acks_ms"] == 8.0
    assert timing["mean_table_ms"] == 4.0
    assert timing["sizes_by_8"] == {0: 1, 64: 1}
    found = points(reader)
    assert sum(count for _, count in found["selauto.decide.batch.size"]) == 2
    parts = {attrs["part"]: count for attrs, count in found["selauto.decide.batch.duration"]}
    assert parts == {"total": 2, "models": 2, "acks": 2, "table": 2}


def test_a_batch_of_decisions_counts_as_each_one_would() -> None:
    one_by_one, batched = InMemoryMetricReader(), InMemoryMetricReader()
    decisions = [("execute", None, 12.0, "billing"), ("defer", "below_threshold", 30.0, "billing")] * 3
    single = RuntimeMetrics(meter_provider=build_meter_provider("test", readers=[one_by_one]))
    for decision in decisions:
        single.on_decision(*decision)
    single.on_event()
    single.on_event()
    many = RuntimeMetrics(meter_provider=build_meter_provider("test", readers=[batched]))
    many.on_decisions(decisions)
    many.on_events(2)
    assert many.snapshot() == single.snapshot()
    assert points(batched) == points(one_by_one)
