"""The decide agent on the real broker: all three stages, redelivery, resume after an operator
acts, dead letters, a restart mid-stream, and trace context carried across topics."""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from selective_autonomy.config import Settings
from selective_autonomy.schemas.event_parts import Actor, DeferralReason, Stage
from selective_autonomy.schemas.events import ActionExecuted, DeadLetter
from selective_autonomy.streams.consumer import EventConsumer
from selective_autonomy.streams.meters import build_meter_provider
from selective_autonomy.streams.producer import EventProducer
from selective_autonomy.streams.tracing import build_tracer_provider, headers_for
from tests.integration.decide_support import (
    FLOW,
    decided,
    install_models,
    read_all,
    run_worker,
    state,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def worker_settings(make_settings: Callable[..., Settings], tmp_path: Path) -> Settings:
    settings = make_settings(partitions=2).model_copy(update={"models_dir": tmp_path / "models"})
    install_models(settings.models_dir, {"retail": Stage.selective, "vip": Stage.copilot, "lab": Stage.logging})
    return settings


def test_three_stages_redelivery_and_dead_letters(worker_settings: Settings) -> None:
    ui = worker_settings.topics.ui_state
    with EventProducer(worker_settings) as producer:
        for cluster in ("retail", "vip", "lab"):
            producer.send(ui, state(f"{cluster}-1", 0, cluster), key=f"{cluster}-1")
        producer.send(ui, state("retail-1", 0, "retail"), key="retail-1")  # redelivered
        producer.send(ui, state("ghost", 0, "retail").model_copy(update={"process_id": "nope"}), key="ghost")
        producer.send_raw(ui, b"\x00garbage", b"junk")
    frozen: list[int] = []

    def decided(w: Any) -> bool:
        frozen.append(gc.get_freeze_count())
        return bool(w.metrics.events >= 6 and sum(w.metrics.outcomes.values()) >= 3)

    worker = run_worker(worker_settings, decided)
    # The start-up heap was frozen out of the collector while the agent ran, and is collectable
    # again once it stopped (this test process goes on).
    assert max(frozen) > 0 and gc.get_freeze_count() == 0
    executed, deferred, proposed = read_all(worker_settings)
    assert [(e.session_id, e.action.action_type) for e in executed] == [("retail-1", "lookup_order")]
    assert [(d.session_id, d.reason) for d in deferred] == [("vip-1", DeferralReason.copilot_stage)]
    assert deferred[0].suggestion == FLOW[0]
    assert [p.session_id for p in proposed] == ["lab-1"]
    assert worker.metrics.skipped["duplicate"] == 1  # type: ignore[attr-defined]
    with EventConsumer(worker_settings, [worker_settings.topics.dead_letter], DeadLetter) as consumer:
        letters = [r.event for r in consumer.take(2)]
    reasons = sorted(letter.error for letter in letters if letter)
    assert any("unknown process 'nope'" in reason for reason in reasons)
    assert any("magic byte" in reason or "too short" in reason or "schema id" in reason for reason in reasons)


def test_resume_after_operator_and_restart_without_loss_or_repeat(worker_settings: Settings) -> None:
    ui = worker_settings.topics.ui_state
    sessions = [f"s{i}" for i in range(12)]
    with EventProducer(worker_settings) as producer:
        for s in sessions:
            producer.send(ui, state(s, 0, "retail"), key=s)
    run_worker(worker_settings, decided(12))
    # The operator completes step 1 by hand in half the sessions; the agent resumes from there.
    with EventProducer(worker_settings) as producer:
        for s in sessions[:6]:
            producer.send(ui, state(s, 2, "retail", actor=Actor.operator), key=s)
        for s in sessions:  # redelivery of already-decided states after the restart
            producer.send(ui, state(s, 0, "retail"), key=s)
    second = run_worker(worker_settings, lambda w: w.metrics.events >= 18 and sum(w.metrics.outcomes.values()) >= 6)
    executed, _, _ = read_all(worker_settings)
    ids = [e.action_id for e in executed]
    assert len(ids) == len(set(ids)) == 18
    resumed = {(e.session_id, e.state_version, e.action.action_type) for e in executed if e.state_version == 2}
    assert resumed == {(s, 2, "close_chat") for s in sessions[:6]}
    # The restarted worker recovered the session table: every replayed state was recognised (the
    # uncommitted tail of the first run counts as duplicates too) and only the new states decided.
    metrics = second.metrics  # type: ignore[attr-defined]
    assert sum(metrics.outcomes.values()) == 6
    assert metrics.skipped["stale"] + metrics.skipped["duplicate"] >= 12


def test_trace_context_links_ui_state_to_its_decision(worker_settings: Settings) -> None:
    exporter = InMemorySpanExporter()
    provider = build_tracer_provider("test", exporters=[exporter])
    tracer = provider.get_tracer("bpm")
    with tracer.start_as_current_span("bpm publish") as parent, EventProducer(worker_settings) as producer:
        producer.send(worker_settings.topics.ui_state, state("t1", 0, "retail"), key="t1", headers=headers_for(parent))
    trace_id = parent.get_span_context().trace_id
    run_worker(worker_settings, decided(1), provider=provider)
    spans = [s for s in exporter.get_finished_spans() if s.name.endswith(" process")]
    assert len(spans) == 1
    assert spans[0].context.trace_id == trace_id
    assert spans[0].parent is not None and spans[0].parent.span_id == parent.get_span_context().span_id
    assert spans[0].attributes["messaging.system"] == "kafka"
    with EventConsumer(worker_settings, [worker_settings.topics.actions_executed], ActionExecuted) as consumer:
        [record] = consumer.take(1)
    traceparent = dict(record.headers)["traceparent"].decode()
    assert traceparent.split("-")[1] == f"{trace_id:032x}"


class Collector(BaseHTTPRequestHandler):
    """A stand-in OTLP/HTTP collector: keeps every request's path and body."""

    received: list[tuple[str, bytes]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[tuple[str, list[tuple[str, bytes]]]]:
    received: list[tuple[str, bytes]] = []
    handler = type("Handler", (Collector,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()


def test_decision_metrics_reach_an_otlp_collector(
    worker_settings: Settings, collector: tuple[str, list[tuple[str, bytes]]]
) -> None:
    url, received = collector
    # The setting names the traces URL, as the chart sets it; metrics go to the same collector.
    meters = build_meter_provider("selauto-worker", otlp_endpoint=f"{url}/v1/traces", export_interval_s=3600)
    with EventProducer(worker_settings) as producer:
        for session, cluster in (("m1", "retail"), ("m2", "vip")):
            producer.send(worker_settings.topics.ui_state, state(session, 0, cluster), key=session)
    run_worker(worker_settings, decided(2), meters=meters)
    assert meters.force_flush(timeout_millis=10_000)
    meters.shutdown()

    assert received and {path for path, _ in received} == {"/v1/metrics"}
    values: dict[str, dict[str, float]] = {}
    for _, body in received:
        request = ExportMetricsServiceRequest.FromString(body)
        for resource in request.resource_metrics:
            service = {a.key: a.value.string_value for a in resource.resource.attributes}["service.name"]
            assert service == "selauto-worker"
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    for point in metric.sum.data_points:
                        key = ",".join(sorted(a.value.string_value for a in point.attributes))
                        values.setdefault(metric.name, {})[key] = point.as_int
    assert values["selauto.events"] == {"": 2}
    assert values["selauto.decisions"] == {"billing,execute": 1, "billing,defer": 1}
    assert values["selauto.deferrals"] == {"billing,copilot_stage": 1}
