"""The decide path in-process on the real broker: a session's states batched together are decided
one after the other (the guardrail counts), and personal data never reaches logs or spans."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from selective_autonomy.agents.worker import Worker, build_worker
from selective_autonomy.config import Settings
from selective_autonomy.schemas.event_parts import ChatTurn, Speaker, UIState
from selective_autonomy.streams.producer import EventProducer
from selective_autonomy.streams.runner import run_app_until
from selective_autonomy.streams.tracing import build_tracer_provider

from .fuzz import CODEC, SAMPLE, _body, _framed
from .helpers import CLUSTERS, TopicCollector, expected_kind, produce, ui_state

pytestmark = pytest.mark.integration


def decided(worker: Worker) -> int:
    return sum(worker.metrics.outcomes.values())


def test_states_of_one_session_in_one_batch_are_decided_in_order(reliability_settings: Settings) -> None:
    """All four states of each 'capped' session back to back: they share batches, yet only the
    first two steps run unattended, as when they arrive one at a time."""
    settings = reliability_settings
    sessions = [f"burst{i}" for i in range(12)]
    states = [ui_state(s, version, "capped") for s in sessions for version in range(4)]
    produce(settings, states)
    worker = build_worker(settings)
    run_app_until(worker.app, lambda: decided(worker) >= len(states), timeout_s=60)
    assert worker.metrics.outcomes == {"execute": 2 * len(sessions), "defer": 2 * len(sessions)}
    assert worker.metrics.deferral_reasons == {"guardrail": 2 * len(sessions)}
    with TopicCollector(settings) as collector:
        collector.wait_for(lambda c: c.covers((s.session_id, s.state_version) for s in states), 30, "records")
        by_state = collector.by_state()
    for state in states:
        [(kind, _)] = by_state[(state.session_id, state.state_version)]
        assert kind == expected_kind("capped", state.state_version)


# -- personal data --------------------------------------------------------------------------------

EMAIL = "zelda.quintanilla-7731@pii-canary.example"
NAME = "Zelda Qx7731 Quintanilla"
SECRETS = (EMAIL, NAME, "Qx7731", "pii-canary")


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def texts(self) -> Iterator[str]:
        formatter = logging.Formatter()
        for record in self.records:
            yield record.getMessage()
            if record.exc_info:
                yield formatter.formatException(record.exc_info)
            yield repr(record.__dict__)


@pytest.fixture
def captured_logs() -> Iterator[Capture]:
    capture = Capture()
    root = logging.getLogger()
    previous = root.level
    root.addHandler(capture)
    root.setLevel(logging.DEBUG)
    try:
        yield capture
    finally:
        root.removeHandler(capture)
        root.setLevel(previous)


def test_pii_fields_appear_in_no_log_record_and_no_span(reliability_settings: Settings, captured_logs: Capture) -> None:
    settings = reliability_settings
    pii = {"email": EMAIL, "customer_name": NAME, "plan": "pro"}
    chat = [ChatTurn(speaker=Speaker.customer, text=f"hi, I am {NAME}, write to {EMAIL}")]
    states = [
        ui_state(f"p-{cluster}", version, cluster, fields=pii).model_copy(
            update={
                "ui_state": UIState(
                    fields=pii, chat_tail=chat, recent_actions=ui_state("x", version).ui_state.recent_actions
                )
            }
        )
        for cluster in CLUSTERS
        for version in range(4)
    ]
    produce(settings, states)
    # Two that fail: an unknown process and a negative state version, both full of personal data.
    with EventProducer(settings) as producer:
        unknown = states[0].model_copy(update={"process_id": "no-such-process", "session_id": "p-unknown"})
        producer.send(settings.topics.ui_state, unknown, key="p-unknown")
        negative = {**SAMPLE.to_avro(), "session_id": "p-negative", "state_version": -3}
        negative["ui_state"] = {**negative["ui_state"], "fields": pii}
        producer.send_raw(settings.topics.ui_state, _framed(_body(negative)), b"p-negative")
    assert CODEC.decode(_framed(_body(SAMPLE.to_avro())), type(SAMPLE)) == SAMPLE  # the framing above is real

    exporter = InMemorySpanExporter()
    provider = build_tracer_provider("pii-test", exporters=[exporter])
    worker = build_worker(settings, tracer_provider=provider)
    run_app_until(worker.app, lambda: decided(worker) >= len(states) and worker.metrics.dead_letters >= 2, timeout_s=60)
    outcomes = Counter(worker.metrics.outcomes)
    assert outcomes["execute"] and outcomes["defer"] and outcomes["record"]  # every kind of decision ran

    spans = exporter.get_finished_spans()
    assert len([s for s in spans if s.name.endswith(" process")]) == len(states)
    span_texts = [
        text
        for span in spans
        for text in (
            span.name,
            repr(dict(span.attributes or {})),
            *(f"{event.name} {dict(event.attributes or {})!r}" for event in span.events),
            *(repr(dict(link.attributes or {})) for link in span.links),
        )
    ]
    log_texts = list(captured_logs.texts())
    assert len(captured_logs.records) > 100 and any(r.levelno == logging.DEBUG for r in captured_logs.records)
    for secret in SECRETS:
        assert not [t for t in span_texts if secret in t], f"{secret!r} in a span"
        leaked = [t for t in log_texts if secret in t]
        assert not leaked, f"{secret!r} in a log record: {leaked[0][:300]}"
