"""The BPM edges on the real broker, against a real HTTP server standing in for the platform.

webhook in -> decide worker (selective stage) -> executor -> platform call with the Idempotency-Key;
a redelivered action applied once (also by a restarted executor that lost its offsets); retries then
success; a refusal turned into ActionFailed plus an execution_failed deferral; unauthenticated and
malformed webhooks refused with nothing published; an unreachable broker answered with 503.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import SecretStr

from selective_autonomy.agents.worker import build_worker
from selective_autonomy.config import (
    ExecutorSettings,
    HttpAdapterSettings,
    HttpRoute,
    IngestSettings,
    KafkaSettings,
    RetrySettings,
    Settings,
)
from selective_autonomy.edges.executor.runner import ExecutorRunner
from selective_autonomy.edges.executor.wiring import run_executor_until
from selective_autonomy.edges.ingest.app import create_ingest_app
from selective_autonomy.edges.ingest.auth import signature
from selective_autonomy.edges.standin import StandInPlatform, serve_in_thread
from selective_autonomy.schemas.event_parts import Action, ActionTier, DeferralReason, Stage
from selective_autonomy.schemas.events import (
    ActionExecuted,
    ActionFailed,
    DeadLetter,
    EventModel,
    OperatorDeferral,
    UIStateChanged,
    action_id_for,
)
from selective_autonomy.store import ActionStatus, FeedbackStore
from selective_autonomy.streams.consumer import EventConsumer
from selective_autonomy.streams.producer import EventProducer
from selective_autonomy.streams.runner import run_app_until
from selective_autonomy.streams.tracing import build_tracer_provider
from tests.integration.decide_support import FLOW, install_models

pytestmark = pytest.mark.integration

TOKEN = "ingest-token-0123456789"
SECRET = "ingest-signing-secret-0123"


@pytest.fixture
def platform() -> Iterator[tuple[StandInPlatform, str]]:
    standin = StandInPlatform()
    with serve_in_thread(standin.app) as url:
        yield standin, url


@pytest.fixture
def edge_settings(
    make_settings: Callable[..., Settings], tmp_path: Path, platform: tuple[StandInPlatform, str]
) -> Settings:
    _, url = platform
    base = make_settings(partitions=2)
    settings = base.model_copy(
        update={
            "models_dir": tmp_path / "models",
            "ingest": IngestSettings(
                tokens={"crm": SecretStr(TOKEN)}, hmac_secrets={"crm": SecretStr(SECRET)}, publish_timeout_s=5.0
            ),
            "executor": ExecutorSettings(
                health_port=0,
                http=HttpAdapterSettings(
                    base_url=url,
                    routes={"*": HttpRoute(url="/sessions/{session_id}/actions/{action_type}")},
                    timeout_s=2.0,
                ),
                retry=RetrySettings(max_attempts=4, initial_delay_s=0.05, max_delay_s=0.2, budget_s=5.0),
            ),
        }
    )
    install_models(settings.models_dir, {"retail": Stage.selective, "vip": Stage.copilot, "lab": Stage.logging})
    return settings


def ui_state(session: str, version: int = 0, **overrides: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "session_id": session,
        "process_id": "billing",
        "business_cluster": "retail",
        "state_version": version,
        "timestamp": "2026-03-02T09:00:00Z",
        "actor": "system",
        "ui_state": {"fields": {"email": "ada@example.org", "plan": "pro"}, "recent_actions": []},
    }
    document.update(overrides)
    return document


def read(settings: Settings, topic: str, model: type[EventModel], idle_s: float = 1.5) -> list[Any]:
    with EventConsumer(settings, [topic], model) as consumer:
        return [r for r in consumer.iterate(idle_timeout_s=idle_s)]


def executed(session: str, action: Action, version: int = 0) -> ActionExecuted:
    return ActionExecuted(
        action_id=action_id_for(session, version, action),
        event_id=f"evt-{session}-{version}",
        session_id=session,
        process_id="billing",
        business_cluster="retail",
        state_version=version,
        action=action,
        tier=ActionTier.auto,
        critic_score=0.97,
        threshold=0.5,
    )


def produce(settings: Settings, *actions: ActionExecuted) -> None:
    with EventProducer(settings) as producer:
        for action in actions:
            producer.send(settings.topics.actions_executed, action, key=action.session_id)


def settled(count: int) -> Callable[[ExecutorRunner], bool]:
    def done(runner: ExecutorRunner) -> bool:
        metrics = runner.executor.metrics
        return metrics.applied + metrics.duplicates + metrics.failed + metrics.unknown >= count

    return done


def test_webhook_to_decision_to_platform_call(edge_settings: Settings, platform: tuple[StandInPlatform, str]) -> None:
    standin, _ = platform
    exporter = InMemorySpanExporter()
    provider = build_tracer_provider("test", exporters=[exporter])
    with serve_in_thread(create_ingest_app(edge_settings, tracer_provider=provider)) as ingest_url:
        raw = json.dumps(ui_state("web-1")).encode()
        started = time.monotonic()
        answer = httpx.post(
            f"{ingest_url}/v1/ui-state",
            content=raw,
            headers={"X-Selauto-Signature": signature(SECRET, raw), "Content-Type": "application/json"},
        )
        webhook_s = time.monotonic() - started
    assert answer.status_code == 202, answer.text
    assert answer.json()["session_id"] == "web-1" and answer.json()["topic"] == edge_settings.topics.ui_state
    assert webhook_s < 5.0

    worker = build_worker(edge_settings, tracer_provider=provider)
    run_app_until(worker.app, lambda: sum(worker.metrics.outcomes.values()) >= 1, timeout_s=60)
    [decision] = [r.event for r in read(edge_settings, edge_settings.topics.actions_executed, ActionExecuted)]
    assert decision.action == FLOW[0] and decision.session_id == "web-1"

    runner = run_executor_until(edge_settings, settled(1), timeout_s=60, tracer_provider=provider)
    assert runner.executor.metrics.applied == 1
    [call] = standin.requests
    assert (call.method, call.path, call.status) == ("POST", "/sessions/web-1/actions/lookup_order", 200)
    assert call.idempotency_key == decision.action_id
    assert call.body["arguments"] == {"order_id": "A1"} and call.body["action_id"] == decision.action_id
    # One trace from the webhook to the platform call.
    trace_id = call.headers["traceparent"].split("-")[1]
    ingest_span = next(s for s in exporter.get_finished_spans() if s.name.endswith(" publish"))
    assert trace_id == f"{ingest_span.context.trace_id:032x}"
    with FeedbackStore.open(edge_settings.store.resolved_url(edge_settings.data_dir)) as store:
        assert store.was_applied(decision.action_id)


def test_a_redelivered_action_is_applied_once_even_by_a_restarted_executor(
    edge_settings: Settings, platform: tuple[StandInPlatform, str]
) -> None:
    standin, _ = platform
    first = executed("r-1", FLOW[0])
    second = executed("r-2", FLOW[1])
    produce(edge_settings, first, first, second, first)
    with EventProducer(edge_settings) as producer:
        producer.send_raw(edge_settings.topics.actions_executed, b"\x00not an action", b"r-3")
    runner = run_executor_until(edge_settings, lambda r: settled(4)(r) and r.state.dead_letters >= 1, timeout_s=60)
    assert (runner.executor.metrics.applied, runner.executor.metrics.duplicates) == (2, 2)
    [letter] = read(edge_settings, edge_settings.topics.dead_letter, DeadLetter)
    assert letter.key == b"r-3" and letter.event.original == b"\x00not an action"
    assert sorted(r.idempotency_key or "" for r in standin.requests) == sorted([first.action_id, second.action_id])
    # A new consumer group reads everything again (offsets lost): the store still knows.
    again = edge_settings.model_copy(
        update={"executor": edge_settings.executor.model_copy(update={"group_id": "another-executor"})}
    )
    runner = run_executor_until(again, settled(4), timeout_s=60)
    assert (runner.executor.metrics.applied, runner.executor.metrics.duplicates) == (0, 4)
    assert len(standin.requests) == 2 and len(standin.applied) == 2


def test_transient_failures_are_retried_then_succeed(
    edge_settings: Settings, platform: tuple[StandInPlatform, str]
) -> None:
    standin, _ = platform
    standin.fail_transiently("send_invoice", times=2, status=503)
    action = executed("t-1", FLOW[1], version=1)
    produce(edge_settings, action)
    runner = run_executor_until(edge_settings, settled(1), timeout_s=60)
    assert runner.executor.metrics.applied == 1 and runner.executor.metrics.retries == 2
    calls = standin.calls_for("send_invoice")
    assert [c.status for c in calls] == [503, 503, 200]
    assert {c.idempotency_key for c in calls} == {action.action_id}
    assert [c.headers["x-selauto-attempt"] for c in calls] == ["1", "2", "3"]
    assert read(edge_settings, edge_settings.topics.actions_failed, ActionFailed, idle_s=1.0) == []


def test_a_permanent_failure_becomes_action_failed_and_a_deferral(
    edge_settings: Settings, platform: tuple[StandInPlatform, str]
) -> None:
    standin, _ = platform
    standin.refuse("close_chat", status=422, body='{"error": "case is locked by another agent"}')
    action = executed("p-1", FLOW[2], version=2)
    produce(edge_settings, action)
    runner = run_executor_until(edge_settings, settled(1), timeout_s=60)
    assert runner.executor.metrics.failed == 1
    [failed] = read(edge_settings, edge_settings.topics.actions_failed, ActionFailed)
    assert failed.key == b"p-1"
    event = failed.event
    assert (event.action_id, event.status_code, event.attempts, event.action) == (action.action_id, 422, 1, FLOW[2])
    assert "locked by another agent" in event.response_excerpt
    [deferral] = [r.event for r in read(edge_settings, edge_settings.topics.operator_deferrals, OperatorDeferral)]
    assert deferral.reason is DeferralReason.execution_failed
    assert (deferral.session_id, deferral.state_version, deferral.suggestion) == ("p-1", 2, FLOW[2])
    assert deferral.suggestion_action_id == action.action_id and "HTTP 422" in deferral.detail
    with FeedbackStore.open(edge_settings.store.resolved_url(edge_settings.data_dir)) as store:
        stored = store.applied_action(action.action_id)
    assert stored is not None and stored.status is ActionStatus.failed
    assert len(standin.calls_for("close_chat")) == 1


def test_unauthenticated_and_malformed_webhooks_publish_nothing(edge_settings: Settings) -> None:
    good = json.dumps(ui_state("bad-1")).encode()
    unknown_field = ui_state("bad-2")
    unknown_field["ui_state"]["fields"]["nickname"] = "Ada"
    batch = {"events": [ui_state("bad-3"), ui_state("bad-4", process_id="shipping")]}
    with serve_in_thread(create_ingest_app(edge_settings)) as url, httpx.Client(base_url=url) as client:

        def post(path: str, raw: bytes, sign: bool = True, **headers: str) -> int:
            if sign:
                headers["X-Selauto-Signature"] = signature(SECRET, raw)
            return client.post(path, content=raw, headers=headers).status_code

        assert post("/v1/ui-state", good, sign=False) == 401
        assert post("/v1/ui-state", good, sign=False, Authorization="Bearer wrong-token-000000") == 403
        assert (
            post(
                "/v1/ui-state",
                good.replace(b"bad-1", b"bad-9"),
                sign=False,
                **{"X-Selauto-Signature": signature(SECRET, good)},
            )
            == 403
        )
        assert post("/v1/ui-state", b'{"session_id": "bad-5"') == 400
        assert post("/v1/ui-state", json.dumps(unknown_field).encode()) == 422
        assert post("/v1/ui-state", json.dumps(ui_state("bad-6", business_cluster="gold")).encode()) == 422
        assert post("/v1/ui-state:batch", json.dumps(batch).encode()) == 422
        assert client.get("/healthz").json()["refused"] == 7
    assert read(edge_settings, edge_settings.topics.ui_state, UIStateChanged) == []


def test_a_batch_is_published_in_order_keyed_by_session(edge_settings: Settings) -> None:
    events = [ui_state("b-1", 0), ui_state("b-2", 0), ui_state("b-1", 1)]
    with TestClient(create_ingest_app(edge_settings)) as client:
        answer = client.post(
            "/v1/ui-state:batch", json={"events": events}, headers={"Authorization": f"Bearer {TOKEN}"}
        )
    assert answer.status_code == 202, answer.text
    assert answer.json()["published"] == 3
    records = read(edge_settings, edge_settings.topics.ui_state, UIStateChanged)
    by_session = {}
    for record in records:
        by_session.setdefault(record.key, []).append(record.event.state_version)
    assert by_session == {b"b-1": [0, 1], b"b-2": [0]}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_broker_is_a_bounded_503(edge_settings: Settings) -> None:
    nowhere = edge_settings.model_copy(
        update={
            "kafka": KafkaSettings(bootstrap_servers=f"127.0.0.1:{free_port()}"),
            "ingest": edge_settings.ingest.model_copy(update={"publish_timeout_s": 1.0}),
        }
    )
    with TestClient(create_ingest_app(nowhere)) as client:
        started = time.monotonic()
        single = client.post("/v1/ui-state", json=ui_state("n-1"), headers={"Authorization": f"Bearer {TOKEN}"})
        elapsed = time.monotonic() - started
        batch = client.post(
            "/v1/ui-state:batch", json={"events": [ui_state("n-2")]}, headers={"Authorization": f"Bearer {TOKEN}"}
        )
    assert single.status_code == 503 and single.json()["error"] == "not_delivered"
    assert elapsed < 4.0
    assert batch.status_code == 503 and batch.json()["items"][0]["status"] == "not_delivered"
