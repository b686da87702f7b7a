"""The console on the real broker: deferrals on the topic reach the inbox API, answers reach the
feedback and executed topics, later decisions drop cards, and a restart rebuilds the inbox."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from selective_autonomy.config import ConsoleSettings, Settings
from selective_autonomy.console.app import create_app
from selective_autonomy.schemas.event_parts import Action, ActionTier, Executor, Verdict
from selective_autonomy.schemas.events import ActionExecuted, CopilotFeedback, EventModel, action_id_for
from selective_autonomy.streams.consumer import EventConsumer, Received
from selective_autonomy.streams.producer import EventProducer
from tests.factories import EMAIL, NAME, deferral
from tests.integration.console_support import ALICE, wait_for, with_schema

pytestmark = pytest.mark.integration

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01".encode()
E = TypeVar("E", bound=EventModel)
CONSOLE = ConsoleSettings(operators={"alice": SecretStr("alice-token-1")})


@pytest.fixture
def console_settings(settings: Settings, tmp_path: Path) -> Settings:
    return with_schema(settings, tmp_path)


@pytest.fixture
def client(console_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(console_settings, console=CONSOLE)) as test_client:
        yield test_client


def card_ids(client: TestClient) -> list[str]:
    response = client.get("/api/inbox", headers=ALICE)
    assert response.status_code == 200
    return [card["deferral_id"] for card in response.json()["cards"]]


def read(settings: Settings, topic: str, model: type[E], count: int) -> list[Received[E]]:
    with EventConsumer(settings, [topic], model) as consumer:
        return consumer.take(count, timeout_s=20)


def event_of(record: Received[E]) -> E:
    assert record.event is not None, record.error
    return record.event


def test_deferrals_reach_the_inbox_and_answers_reach_the_topics(client: TestClient, console_settings: Settings) -> None:
    topics = console_settings.topics
    with EventProducer(console_settings) as producer:
        producer.send(topics.operator_deferrals, deferral("s1", 3), key="s1", headers=[("traceparent", TRACEPARENT)])
        producer.send(topics.operator_deferrals, deferral("s2", 4), key="s2", headers=[("traceparent", TRACEPARENT)])
    wait_for(lambda: card_ids(client) == ["d-s1-3", "d-s2-4"])
    inbox = client.get("/api/inbox", headers=ALICE).text
    assert NAME not in inbox and EMAIL not in inbox

    accepted = client.post("/api/deferrals/d-s1-3/accept", headers=ALICE, json={"state_version": 3})
    assert accepted.status_code == 200, accepted.text
    correction = {"action_type": "issue_refund", "arguments": {"amount": 20, "reason": "duplicate"}}
    corrected = client.post("/api/deferrals/d-s2-4/correct", headers=ALICE, json={"action": correction})
    assert corrected.status_code == 200, corrected.text
    assert client.post("/api/deferrals/d-s1-3/accept", headers=ALICE).status_code == 409
    assert card_ids(client) == []

    feedback = read(console_settings, topics.copilot_feedback, CopilotFeedback, 2)
    executed = read(console_settings, topics.actions_executed, ActionExecuted, 2)
    by_session = {event_of(r).session_id: event_of(r) for r in feedback}
    suggestion = deferral("s1", 3).suggestion
    assert suggestion is not None
    first, second = by_session["s1"], by_session["s2"]
    assert first.verdict is Verdict.accepted and first.operator_id == "alice" and first.deferral_id == "d-s1-3"
    assert second.verdict is Verdict.corrected and second.operator_action == Action.model_validate(correction)
    runs = {event_of(r).session_id: event_of(r) for r in executed}
    assert runs["s1"].action_id == action_id_for("s1", 3, suggestion) == accepted.json()["action_id"]
    assert runs["s2"].action_id == action_id_for("s2", 4, Action.model_validate(correction))
    assert all(e.executed_by is Executor.operator and e.operator_id == "alice" for e in runs.values())
    records: list[Received[Any]] = [*feedback, *executed]
    for record in records:
        assert record.key == event_of(record).session_id.encode()
        assert TRACE_ID.encode() in dict(record.headers)["traceparent"]

    # The console reads its own records back without counting them twice.
    wait_for(lambda: client.get("/api/counters", headers=ALICE).json()["operator_today"] == 2)


def test_newer_states_supersede_later_decisions_drop_and_a_restart_rebuilds(
    client: TestClient, console_settings: Settings
) -> None:
    topics = console_settings.topics
    lookup = Action(action_type="lookup_invoice", arguments={"invoice_id": "INV-9"})
    with EventProducer(console_settings) as producer:
        producer.send(topics.operator_deferrals, deferral("s1", 1), key="s1")
        producer.send(topics.operator_deferrals, deferral("s1", 2), key="s1")
        producer.send(topics.operator_deferrals, deferral("s2", 1), key="s2")
        producer.send(topics.operator_deferrals, deferral("s3", 1), key="s3")
    wait_for(lambda: sorted(card_ids(client)) == ["d-s1-2", "d-s2-1", "d-s3-1"])
    with EventProducer(console_settings) as producer:
        # The session moved on without the console: the decide agent executed a later step.
        producer.send(
            topics.actions_executed,
            ActionExecuted(
                action_id=action_id_for("s2", 2, lookup),
                event_id="e",
                session_id="s2",
                process_id="helpdesk",
                business_cluster="billing",
                state_version=2,
                action=lookup,
                tier=ActionTier.auto,
            ),
            key="s2",
        )
    wait_for(lambda: sorted(card_ids(client)) == ["d-s1-2", "d-s3-1"])
    assert client.get("/api/counters", headers=ALICE).json()["automated_today"] == 1
    assert client.post("/api/deferrals/d-s3-1/accept", headers=ALICE).status_code == 200

    # A new console instance rebuilds the same inbox from the topics.
    with TestClient(create_app(console_settings, console=CONSOLE)) as again:
        wait_for(lambda: again.get("/healthz").json()["feed"] == "live")
        assert card_ids(again) == ["d-s1-2"]
        counters = again.get("/api/counters", headers=ALICE).json()
        assert counters["automated_today"] == 1 and counters["operator_today"] == 1
