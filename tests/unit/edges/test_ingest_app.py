"""The ingest app in process (no network, no broker): auth before parsing, validation, 202/4xx/503, batches."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from selective_autonomy.config import IngestSettings, Settings, TelemetrySettings
from selective_autonomy.edges.ingest.app import create_ingest_app, openapi_document
from selective_autonomy.edges.ingest.auth import signature
from selective_autonomy.schemas.events import UIStateChanged
from selective_autonomy.streams.meters import process_meters
from selective_autonomy.streams.serialization import AvroCodec
from selective_autonomy.streams.tracing import build_tracer_provider
from tests.factories import BILLING_TYPED as SCHEMA
from tests.factories import body
from tests.support.fakes import ListPublisher, Schemas

TOKEN = "ingest-token-0123456789"
SECRET = "ingest-signing-secret-0123"
OPENAPI = Path(__file__).parents[3] / "docs" / "openapi-ingest.json"


def settings(**ingest: Any) -> Settings:
    config = {"tokens": {"crm": SecretStr(TOKEN)}, "hmac_secrets": {"crm": SecretStr(SECRET)}, **ingest}
    return Settings(ingest=IngestSettings(**config))


@pytest.fixture
def publisher() -> ListPublisher:
    return ListPublisher()


@pytest.fixture
def client(publisher: ListPublisher) -> Iterator[TestClient]:
    provider = build_tracer_provider("test")
    app = create_ingest_app(
        settings(max_batch_items=5), publisher=publisher, schemas=Schemas(SCHEMA), tracer_provider=provider
    )
    with TestClient(app) as test_client:
        yield test_client
    assert publisher.started and publisher.closed


def bearer() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


def signed(raw: bytes) -> dict[str, str]:
    return {"X-Selauto-Signature": signature(SECRET, raw), "Content-Type": "application/json"}


def test_a_valid_event_is_published_keyed_by_session_and_acknowledged(
    client: TestClient, publisher: ListPublisher
) -> None:
    raw = json.dumps(body(event_id="evt-1")).encode()
    answer = client.post("/v1/ui-state", content=raw, headers=signed(raw))
    assert answer.status_code == 202, answer.text
    assert answer.json() == {
        "event_id": "evt-1",
        "session_id": "s1",
        "state_version": 3,
        "topic": "ui.state",
        "partition": 0,
        "offset": 0,
    }
    [record] = publisher.records
    assert (record.topic, record.key) == ("ui.state", "s1")
    assert isinstance(record.event, UIStateChanged) and record.event.event_id == "evt-1"
    assert any(name == "traceparent" for name, _ in record.headers)
    codec = AvroCodec()
    assert codec.decode(codec.encode(record.event, "ui.state"), UIStateChanged) == record.event
    assert client.post("/v1/ui-state", json=body(), headers=bearer()).status_code == 202


def test_without_credentials_401_with_wrong_ones_403_and_nothing_is_published(
    client: TestClient, publisher: ListPublisher
) -> None:
    raw = json.dumps(body()).encode()
    missing = client.post("/v1/ui-state", content=raw)
    assert missing.status_code == 401 and missing.json()["error"] == "unauthenticated"
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    tampered = raw.replace(b'"s1"', b'"s2"')
    assert client.post("/v1/ui-state", content=tampered, headers=signed(raw)).status_code == 403
    assert client.post("/v1/ui-state", content=raw, headers={"Authorization": "Bearer nope"}).status_code == 403
    # Not even a malformed body gets past authentication: the caller learns nothing about the format.
    assert client.post("/v1/ui-state", content=b"{oops").status_code == 401
    assert client.post("/v1/ui-state:batch", content=b"{}").status_code == 401
    assert publisher.records == []
    assert client.get("/healthz").json()["refused"] == 5


def test_malformed_and_invalid_bodies_are_refused_with_every_violation(
    client: TestClient, publisher: ListPublisher
) -> None:
    malformed = client.post("/v1/ui-state", content=b'{"session_id": ', headers=bearer())
    assert malformed.status_code == 400 and malformed.json()["error"] == "malformed_json"
    document = body(business_cluster="gold", surprise=True)
    invalid = client.post("/v1/ui-state", json=document, headers=bearer())
    assert invalid.status_code == 422 and invalid.json()["error"] == "invalid_event"
    assert {v["loc"] for v in invalid.json()["violations"]} == {"surprise"}  # the contract first
    document = body(business_cluster="gold")
    document["ui_state"]["fields"]["nickname"] = "Ada"
    invalid = client.post("/v1/ui-state", json=document, headers=bearer())
    assert {v["loc"] for v in invalid.json()["violations"]} == {"business_cluster", "ui_state.fields.nickname"}
    assert publisher.records == []


def test_a_body_over_the_limit_is_refused(publisher: ListPublisher) -> None:
    app = create_ingest_app(settings(max_body_bytes=1024), publisher=publisher, schemas=Schemas(SCHEMA))
    with TestClient(app) as client:
        raw = json.dumps(body(session_id="s" * 2000)).encode()
        assert client.post("/v1/ui-state", content=raw, headers=signed(raw)).status_code == 413
    assert publisher.records == []


def test_an_unacknowledged_event_is_a_503_to_retry() -> None:
    failing = ListPublisher(fail=True)
    app = create_ingest_app(settings(), publisher=failing, schemas=Schemas(SCHEMA))
    with TestClient(app) as client:
        answer = client.post("/v1/ui-state", json=body(), headers=bearer())
        assert answer.status_code == 503 and answer.json()["error"] == "not_delivered"
        assert answer.headers["Retry-After"] == "1"
        assert client.get("/healthz").json()["not_delivered"] == 1


def test_batches_are_validated_all_or_nothing_then_reported_per_item(
    client: TestClient, publisher: ListPublisher
) -> None:
    events = [body(session_id=f"s{i}", state_version=i) for i in range(3)]
    events[2]["ui_state"]["fields"]["plan"] = "gold"
    refused = client.post("/v1/ui-state:batch", json={"events": events}, headers=bearer())
    assert refused.status_code == 422 and refused.json()["error"] == "invalid_batch"
    assert [(i["index"], i["violations"][0]["loc"]) for i in refused.json()["items"]] == [(2, "ui_state.fields.plan")]
    assert publisher.records == []
    events[2]["ui_state"]["fields"]["plan"] = "pro"
    accepted = client.post("/v1/ui-state:batch", json={"events": events}, headers=bearer())
    assert accepted.status_code == 202
    report = accepted.json()
    assert report["published"] == 3 and report["not_delivered"] == 0
    assert [(i["session_id"], i["status"], i["offset"]) for i in report["items"]] == [
        ("s0", "published", 0),
        ("s1", "published", 1),
        ("s2", "published", 2),
    ]
    assert [r.key for r in publisher.records] == ["s0", "s1", "s2"]


def test_batch_shape_and_size_limits(client: TestClient, publisher: ListPublisher) -> None:
    for document in ([body()], {"events": []}, {"events": [body()], "extra": 1}):
        answer = client.post("/v1/ui-state:batch", json=document, headers=bearer())
        assert answer.status_code == 422, document
    too_many = {"events": [body(state_version=i) for i in range(6)]}
    assert client.post("/v1/ui-state:batch", json=too_many, headers=bearer()).status_code == 413
    assert publisher.records == []


def test_a_partly_unacknowledged_batch_is_a_503_with_the_report() -> None:
    app = create_ingest_app(settings(), publisher=ListPublisher(fail=True), schemas=Schemas(SCHEMA))
    with TestClient(app) as client:
        answer = client.post("/v1/ui-state:batch", json={"events": [body()]}, headers=bearer())
    assert answer.status_code == 503
    assert answer.json()["items"][0]["status"] == "not_delivered"


def test_health_lists_the_known_processes(client: TestClient) -> None:
    assert client.get("/healthz").json() == {
        "status": "ok",
        "processes": ["billing"],
        "accepted": 0,
        "refused": 0,
        "not_delivered": 0,
    }


def test_the_committed_openapi_document_is_up_to_date() -> None:
    committed = json.loads(OPENAPI.read_text())
    assert committed == openapi_document(), "regenerate: selauto ingest openapi --out docs/openapi-ingest.json"
    paths = committed["paths"]
    assert set(paths) == {"/v1/ui-state", "/v1/ui-state:batch", "/healthz"}
    assert paths["/v1/ui-state"]["post"]["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/UIStateChanged"
    }
    assert set(committed["components"]["securitySchemes"]) == {"bearerAuth", "bodySignature"}


def test_values_beyond_avro_are_refused_not_a_server_error(client: TestClient, publisher: ListPublisher) -> None:
    huge = client.post("/v1/ui-state", json=body(state_version=2**70), headers=bearer())
    assert huge.status_code == 422 and "Avro" in huge.json()["message"]
    document = body()
    document["ui_state"]["fields"]["tickets"] = 2**64
    batch = client.post("/v1/ui-state:batch", json={"events": [body(), document]}, headers=bearer())
    assert batch.status_code == 422 and [i["index"] for i in batch.json()["items"]] == [1]
    assert batch.json()["items"][0]["violations"][0]["msg"] == "must fit in 64 bits (an Avro long)"
    assert publisher.records == []


class WatchedSchemas(Schemas):
    """Records every process id looked up: a lookup is where an id would meet the models directory."""

    def __init__(self) -> None:
        super().__init__(SCHEMA)
        self.asked: list[str] = []

    def schema(self, process_id: str) -> Any:
        self.asked.append(process_id)
        return super().schema(process_id)


@pytest.mark.parametrize(
    ("where", "hostile"),
    [
        ("process_id", "billing/../../etc"),
        ("process_id", ".."),
        ("process_id", "bill\x00ing"),
        ("process_id", "x" * 129),
        ("business_cluster", "retail/x"),
        ("business_cluster", "ret\x00ail"),
        ("session_id", "s\x00"),
        ("field", "em/ail"),
        ("field", "\x00"),
        ("control", ".."),
        ("action", "refund\x00"),
    ],
)
def test_a_hostile_identifier_is_a_422_before_any_schema_lookup(where: str, hostile: str) -> None:
    publisher, schemas = ListPublisher(), WatchedSchemas()
    app = create_ingest_app(settings(), publisher=publisher, schemas=schemas)
    document = body()
    if where == "field":
        document["ui_state"]["fields"][hostile] = "x"
    elif where == "control":
        document["ui_state"]["controls"] = [hostile]
    elif where == "action":
        document["last_action"] = {"action_type": hostile, "arguments": {}}
    else:
        document[where] = hostile
    with TestClient(app) as client:
        one = client.post("/v1/ui-state", json=document, headers=bearer())
        batch = client.post("/v1/ui-state:batch", json={"events": [body(), document]}, headers=bearer())
    assert one.status_code == 422 and one.json()["error"] == "invalid_event", one.text
    assert batch.status_code == 422 and [item["index"] for item in batch.json()["items"]] == [1]
    assert "should match pattern" in one.json()["violations"][0]["msg"] or "at most" in one.json()["message"]
    assert publisher.records == []
    assert hostile not in schemas.asked  # the contract refused it before the schema was looked up


def test_metrics_count_accepted_refused_and_undelivered_events() -> None:
    meters = process_meters(TelemetrySettings(service_name="ingest"))
    failing = ListPublisher(fail=True)
    app = create_ingest_app(
        settings(),
        publisher=failing,
        schemas=Schemas(SCHEMA),
        meter_provider=meters.provider,
        exposition=meters.exposition,
    )
    with TestClient(app) as client:
        assert client.post("/v1/ui-state", json=body(), headers=bearer()).status_code == 503
        assert client.post("/v1/ui-state", content=b"{}").status_code == 401
        failing.fail = False
        assert client.post("/v1/ui-state", json=body(session_id="s2"), headers=bearer()).status_code == 202
        text = client.get("/metrics").text  # open, like /healthz
    values = {
        (s.name, s.labels.get("result", "")): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert values[("selauto_ingest_events_total", "accepted")] == 1
    assert values[("selauto_ingest_events_total", "not_delivered")] == 1
    assert values[("selauto_ingest_refused_total", "")] == 1
