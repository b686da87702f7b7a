"""The hand controls in the console's JSON API: supervisors only, the processes they see, recorded
with the caller as who; a stage move goes out through the console's sink. TestClient, a list sink
and a SQLite store in a temporary folder: no broker, no network."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from selective_autonomy.config import ConsoleSettings, Settings
from selective_autonomy.console.app import create_app
from selective_autonomy.inference.registry import ModelRegistry, ServicePointer
from selective_autonomy.schemas.event_parts import Stage
from selective_autonomy.schemas.events import StageChanged
from tests.factories import HELPDESK as SCHEMA
from tests.support.fakes import ListSink
from tests.support.promotions import with_proposal

ALICE = {"Authorization": "Bearer alice-token-1"}  # supervisor
BOB = {"Authorization": "Bearer bob-token-22"}  # operator of helpdesk, not a supervisor
CAROL = {"Authorization": "Bearer carol-token-3"}  # supervisor of another process only


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    registry = ModelRegistry(tmp_path / "models")
    registry.save_schema(SCHEMA)
    registry.publish("helpdesk", ServicePointer(stages={"billing": Stage.selective}, default_stage=Stage.copilot))
    return registry


@pytest.fixture
def sink() -> ListSink:
    return ListSink()


@pytest.fixture
def client(registry: ModelRegistry, sink: ListSink, tmp_path: Path) -> Iterator[TestClient]:
    console = ConsoleSettings(
        operators={
            "alice": SecretStr("alice-token-1"),
            "bob": SecretStr("bob-token-22"),
            "carol": SecretStr("carol-token-3"),
        },
        operator_processes={"carol": ["onboarding"]},
        supervisors=["alice", "carol"],
    )
    settings = Settings(models_dir=registry.models_dir, data_dir=tmp_path / "data")
    app = create_app(settings, console=console, sink=sink, start_feed=False)
    with TestClient(app) as test_client:
        yield test_client


def test_a_supervisor_pauses_and_resumes_and_everyone_who_sees_the_process_reads_it(
    client: TestClient, registry: ModelRegistry
) -> None:
    response = client.post("/api/processes/helpdesk/pause", json={"reason": "incident 42"}, headers=ALICE)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["scope"], body["control"], body["changed"], body["operator_id"]) == ("*", "pause", True, "alice")
    assert [(p["scope"], p["by"], p["reason"]) for p in body["pauses"]] == [("*", "alice", "incident 42")]
    assert registry.pointer("helpdesk").paused["*"].by == "alice"
    # The header's stage tiles say so (the first read of the catalog's stages: nothing cached yet).
    stages = client.get("/api/counters", headers=BOB).json()["stages"]
    assert {(r["business_cluster"], r["paused"]) for r in stages} == {("billing", True), ("outage", True)}
    view = client.get("/api/processes/helpdesk/controls", headers=BOB)
    assert view.status_code == 200
    clusters = {c["business_cluster"]: c for c in view.json()["clusters"]}
    assert clusters["billing"]["paused"]["by"] == "alice" and clusters["outage"]["paused"]["scope"] == "*"
    assert [(h["control"], h["scope"], h["changed_by"]) for h in view.json()["history"]] == [("pause", "*", "alice")]

    cluster = client.post(
        "/api/processes/helpdesk/pause", json={"business_cluster": "billing", "reason": "refunds"}, headers=ALICE
    )
    assert cluster.status_code == 200
    resumed = client.post("/api/processes/helpdesk/resume", json={"reason": "fixed"}, headers=ALICE)
    assert resumed.status_code == 200 and [p["scope"] for p in resumed.json()["pauses"]] == ["billing"]
    again = client.post("/api/processes/helpdesk/resume", json={"reason": "twice"}, headers=ALICE)
    assert again.status_code == 409 and again.json()["error"] == "nothing_to_change"
    assert set(registry.pointer("helpdesk").paused) == {"billing"}


def test_a_stage_set_by_hand_is_held_recorded_and_announced(
    client: TestClient, registry: ModelRegistry, sink: ListSink
) -> None:
    body = {"business_cluster": "billing", "stage": "copilot", "reason": "wrong refunds"}
    response = client.post("/api/processes/helpdesk/stage", json=body, headers=ALICE)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert (answer["stage"], answer["stage_moved"], answer["published"]) == ("copilot", True, True)
    [event] = sink.of(StageChanged)
    assert (event.from_stage, event.to_stage, event.reason) == (  # type: ignore[attr-defined]
        Stage.selective,
        Stage.copilot,
        "set by hand by alice: wrong refunds",
    )
    assert sink.sent[0][0] == Settings().topics.stage_changes and sink.sent[0][2] == "helpdesk/billing"
    assert registry.pointer("helpdesk").manual["billing"].by == "alice"
    view = client.get("/api/processes/helpdesk/controls", headers=ALICE).json()
    assert view["clusters"][0]["held_by_hand"]["reason"] == "wrong refunds"
    assert [(m["to_stage"], m["changed_by"]) for m in view["stage_history"]] == [("copilot", "alice")]

    # A broker that does not acknowledge: the move is in force all the same, and the answer says so.
    sink.fail = True
    body = {"business_cluster": "outage", "stage": "logging", "reason": "new form"}
    failed = client.post("/api/processes/helpdesk/stage", json=body, headers=ALICE).json()
    assert failed["published"] is False and "not delivered" in failed["publish_error"]
    assert registry.pointer("helpdesk").stage("outage") is Stage.logging

    release = {"business_cluster": "billing", "reason": "retrained"}
    assert client.post("/api/processes/helpdesk/stage/release", json=release, headers=ALICE).status_code == 200
    assert registry.pointer("helpdesk").manual.keys() == {"outage"}


@pytest.mark.parametrize(
    ("path", "body", "headers", "status", "error"),
    [
        ("/api/processes/helpdesk/pause", {"reason": "x"}, BOB, 403, "not_supervisor"),
        (
            "/api/processes/helpdesk/stage",
            {"business_cluster": "billing", "stage": "copilot", "reason": "x"},
            BOB,
            403,
            "not_supervisor",
        ),
        # A supervisor of other processes does not see this one.
        ("/api/processes/helpdesk/pause", {"reason": "x"}, CAROL, 404, "not_found"),
        ("/api/processes/onboarding/pause", {"reason": "x"}, CAROL, 404, "not_found"),  # not in the models dir
        ("/api/processes/helpdesk/pause", {"business_cluster": "eu", "reason": "x"}, ALICE, 422, "control_refused"),
        ("/api/processes/helpdesk/pause", {"reason": ""}, ALICE, 422, "invalid_request"),
        (
            "/api/processes/helpdesk/stage",
            {"business_cluster": "billing", "stage": "auto", "reason": "x"},
            ALICE,
            422,
            "invalid_request",
        ),
        (
            "/api/processes/helpdesk/stage/release",
            {"business_cluster": "billing", "reason": "x"},
            ALICE,
            409,
            "nothing_to_change",
        ),
        # outage is in copilot with no promotion proposed.
        ("/api/processes/helpdesk/stage/confirm", {"business_cluster": "outage"}, ALICE, 409, "nothing_to_change"),
        ("/api/processes/helpdesk/stage/confirm", {"business_cluster": "eu"}, ALICE, 422, "control_refused"),
        ("/api/processes/helpdesk/stage/confirm", {"business_cluster": "outage"}, BOB, 403, "not_supervisor"),
    ],
)
def test_what_may_not_or_cannot_be_done_is_refused_and_changes_nothing(
    client: TestClient, registry: ModelRegistry, path: str, body: dict, headers: dict, status: int, error: str
) -> None:
    before = registry.pointer("helpdesk")
    response = client.post(path, json=body, headers=headers)
    assert response.status_code == status, response.text
    assert response.json()["error"] == error
    assert registry.pointer("helpdesk") == before
    if headers is CAROL:
        assert client.get("/api/processes/helpdesk/controls", headers=CAROL).status_code == 404


def test_a_signed_in_supervisor_needs_the_csrf_token(client: TestClient) -> None:
    page = client.get("/login")
    nonce = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert nonce is not None
    client.post(
        "/login",
        data={"operator_id": "alice", "token": "alice-token-1", "csrf_token": nonce.group(1), "next": "/"},
        follow_redirects=False,
    )
    assert client.post("/api/processes/helpdesk/pause", json={"reason": "x"}).status_code == 403
    csrf = re.search(r'"X-CSRF-Token": "([^"]+)"', client.get("/").text)
    assert csrf is not None
    answer = client.post("/api/processes/helpdesk/pause", json={"reason": "x"}, headers={"X-CSRF-Token": csrf.group(1)})
    assert answer.status_code == 200 and answer.json()["operator_id"] == "alice"


def test_supervisors_must_be_operators() -> None:
    with pytest.raises(ValueError, match=r"not in console\.operators"):
        ConsoleSettings(operators={"alice": SecretStr("alice-token-1")}, supervisors=["mallory"])


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/processes/helpdesk/controls"),
        ("POST", "/api/processes/helpdesk/stage"),
        ("POST", "/api/processes/helpdesk/stage/release"),
        ("POST", "/api/processes/helpdesk/stage/confirm"),
        ("POST", "/api/processes/helpdesk/pause"),
        ("POST", "/api/processes/helpdesk/resume"),
    ],
)
def test_anonymous_callers_are_refused_before_the_body_is_read(client: TestClient, method: str, path: str) -> None:
    response = client.request(method, path, content=b"{not json")
    assert response.status_code == 401 and response.json()["error"] == "unauthenticated"


def test_a_supervisor_confirms_a_proposed_promotion_and_everyone_who_sees_the_process_reads_it(
    client: TestClient, registry: ModelRegistry, sink: ListSink
) -> None:
    registry.update("helpdesk", lambda p: with_proposal(p, "helpdesk", "outage"))
    view = client.get("/api/processes/helpdesk/controls", headers=BOB).json()
    pending = {c["business_cluster"]: c["pending_promotion"] for c in view["clusters"]}
    assert pending["billing"] is None and pending["outage"]["certified_coverage"] == 0.4
    assert pending["outage"]["reason"].startswith("certified thresholds cover 40.0%")
    assert (pending["outage"]["policy_version"], pending["outage"]["target_precision"]) == ("v1", 0.9)

    # An operator who is not a supervisor may read it, not confirm it.
    body = {"business_cluster": "outage", "reason": "checked the certificate"}
    refused = client.post("/api/processes/helpdesk/stage/confirm", json=body, headers=BOB)
    assert refused.status_code == 403 and refused.json()["error"] == "not_supervisor"
    assert registry.pointer("helpdesk").stage("outage") is Stage.copilot

    # Paused: refused with 409 held, and the proposal stays.
    client.post("/api/processes/helpdesk/pause", json={"business_cluster": "outage", "reason": "audit"}, headers=ALICE)
    held = client.post("/api/processes/helpdesk/stage/confirm", json=body, headers=ALICE)
    assert held.status_code == 409 and held.json()["error"] == "held"
    assert "paused by alice (audit)" in held.json()["message"]
    assert registry.pointer("helpdesk").pending_promotion("outage") is not None
    client.post("/api/processes/helpdesk/resume", json={"business_cluster": "outage", "reason": "ok"}, headers=ALICE)

    response = client.post("/api/processes/helpdesk/stage/confirm", json=body, headers=ALICE)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert (answer["control"], answer["stage"], answer["stage_moved"], answer["published"]) == (
        "confirm",
        "selective",
        True,
        True,
    )
    [event] = sink.of(StageChanged)
    assert (event.from_stage, event.to_stage) == (Stage.copilot, Stage.selective)  # type: ignore[attr-defined]
    assert event.reason.startswith("promotion confirmed by alice: checked the certificate")  # type: ignore[attr-defined]
    assert sink.sent[-1][2] == "helpdesk/outage"
    assert registry.pointer("helpdesk").stage("outage") is Stage.selective
    view = client.get("/api/processes/helpdesk/controls", headers=BOB).json()
    assert all(c["pending_promotion"] is None for c in view["clusters"])
    assert [(h["control"], h["scope"], h["stage"]) for h in view["history"]][-1] == ("confirm", "outage", "selective")
    assert [(m["to_stage"], m["changed_by"]) for m in view["stage_history"]][-1] == ("selective", "alice")

    # Confirmed already: nothing is pending.
    again = client.post("/api/processes/helpdesk/stage/confirm", json=body, headers=ALICE)
    assert again.status_code == 409 and again.json()["error"] == "nothing_to_change"
