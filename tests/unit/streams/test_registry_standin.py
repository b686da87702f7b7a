"""The stand-in Schema Registry answers like the Confluent API reference says, in process (no network)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from selective_autonomy.schemas import contracts
from selective_autonomy.streams.registry_standin import StandInSchemaRegistry

V1 = {
    "type": "record",
    "name": "Thing",
    "namespace": "test",
    "fields": [{"name": "id", "type": "string"}],
}
V2_OPTIONAL = {**V1, "fields": [*V1["fields"], {"name": "note", "type": ["null", "string"], "default": None}]}
V2_REQUIRED = {**V1, "fields": [*V1["fields"], {"name": "note", "type": "string"}]}


def body(schema: Any) -> dict[str, Any]:
    return {"schema": json.dumps(schema), "schemaType": "AVRO"}


@pytest.fixture
def registry() -> StandInSchemaRegistry:
    return StandInSchemaRegistry()


@pytest.fixture
def api(registry: StandInSchemaRegistry) -> TestClient:
    return TestClient(registry.app)


def test_register_look_up_and_fetch_by_id(api: TestClient) -> None:
    first = api.post("/subjects/things-value/versions", json=body(V1))
    assert first.status_code == 200 and first.headers["content-type"].startswith("application/vnd.schemaregistry")
    schema_id = first.json()["id"]
    # Same schema, written differently: the same id, no new version.
    reordered = json.dumps(V1, indent=3, sort_keys=True)
    assert api.post("/subjects/things-value/versions", json={"schema": reordered}).json() == {"id": schema_id}
    assert api.get("/subjects/things-value/versions").json() == [1]
    found = api.post("/subjects/things-value", json=body(V1)).json()
    assert found == {"subject": "things-value", "version": 1, "id": schema_id, "schema": json.dumps(V1)}
    assert json.loads(api.get(f"/schemas/ids/{schema_id}").json()["schema"]) == V1
    assert api.get("/subjects/things-value/versions/latest").json()["id"] == schema_id
    # The same schema under another subject keeps its id.
    assert api.post("/subjects/other-value/versions", json=body(V1)).json() == {"id": schema_id}
    assert api.get("/subjects").json() == ["other-value", "things-value"]


@pytest.mark.parametrize(
    ("path", "method", "status", "code"),
    [
        ("/schemas/ids/99", "get", 404, 40403),
        ("/subjects/nothing-value/versions", "get", 404, 40401),
        ("/subjects/nothing-value", "post", 404, 40401),
        ("/subjects/things-value/versions/7", "get", 404, 40402),
        ("/subjects/things-value/versions/seven", "get", 422, 42202),
        ("/config/things-value", "get", 404, 40408),
    ],
)
def test_errors_carry_the_api_reference_codes(api: TestClient, path: str, method: str, status: int, code: int) -> None:
    api.post("/subjects/things-value/versions", json=body(V1))
    answer = api.request(method.upper(), path, json=body(V1) if method == "post" else None)
    assert (answer.status_code, answer.json()["error_code"]) == (status, code)


def test_a_schema_that_is_not_in_the_subject_is_not_found(api: TestClient) -> None:
    api.post("/subjects/things-value/versions", json=body(V1))
    answer = api.post("/subjects/things-value", json=body(V2_OPTIONAL))
    assert (answer.status_code, answer.json()["error_code"]) == (404, 40403)


def test_invalid_schemas_and_unsupported_kinds_are_refused(api: TestClient) -> None:
    for request in (
        {"schema": "{not json"},
        {"schema": json.dumps({"type": "record", "name": "X", "fields": [{"name": "a", "type": "Missing"}]})},
        {"schema": json.dumps(V1), "schemaType": "PROTOBUF"},
        {"schema": json.dumps(V1), "references": [{"name": "a", "subject": "b", "version": 1}]},
    ):
        answer = api.post("/subjects/things-value/versions", json=request)
        assert (answer.status_code, answer.json()["error_code"]) == (422, 42201), request


def test_backward_allows_an_optional_field_and_refuses_a_required_one(api: TestClient) -> None:
    api.post("/subjects/things-value/versions", json=body(V1))
    check = "/compatibility/subjects/things-value/versions/latest?verbose=true"
    assert api.post(check, json=body(V2_OPTIONAL)).json() == {"is_compatible": True, "messages": []}
    refused = api.post(check, json=body(V2_REQUIRED)).json()
    assert refused["is_compatible"] is False and any("note" in m for m in refused["messages"])
    register = api.post("/subjects/things-value/versions", json=body(V2_REQUIRED))
    assert (register.status_code, register.json()["error_code"]) == (409, 409)
    assert api.post("/subjects/things-value/versions", json=body(V2_OPTIONAL)).status_code == 200
    assert api.get("/subjects/things-value/versions").json() == [1, 2]


def test_compatibility_levels_per_subject_and_global(api: TestClient) -> None:
    assert api.get("/config").json() == {"compatibilityLevel": "BACKWARD"}
    assert api.put("/config/things-value", json={"compatibility": "NONE"}).json() == {"compatibility": "NONE"}
    assert api.get("/config/things-value").json() == {"compatibilityLevel": "NONE"}
    assert api.get("/config/other-value?defaultToGlobal=true").json() == {"compatibilityLevel": "BACKWARD"}
    api.post("/subjects/things-value/versions", json=body(V1))
    assert api.post("/subjects/things-value/versions", json=body(V2_REQUIRED)).status_code == 200  # NONE
    bad = api.put("/config", json={"compatibility": "SIDEWAYS"})
    assert (bad.status_code, bad.json()["error_code"]) == (422, 42203)


def test_forward_and_full_check_the_other_direction() -> None:
    registry = StandInSchemaRegistry(compatibility="FORWARD")
    api = TestClient(registry.app)
    api.post("/subjects/things-value/versions", json=body(V2_REQUIRED))
    # Dropping a required field: new data lacks what the old reader needs.
    assert api.post("/subjects/things-value/versions", json=body(V1)).status_code == 409
    api.put("/config/things-value", json={"compatibility": "FULL"})
    assert api.post("/subjects/things-value/versions", json=body(V1)).status_code == 409


def test_transitive_levels_check_every_version() -> None:
    registry = StandInSchemaRegistry(compatibility="NONE")
    api = TestClient(registry.app)
    api.post("/subjects/things-value/versions", json=body(V1))
    api.post("/subjects/things-value/versions", json=body(V2_REQUIRED))
    # Reads v2 data (it has a note) but not v1 data (no note, and no default for it).
    needs_note = {**V2_REQUIRED, "fields": [*V2_REQUIRED["fields"], {"name": "x", "type": "int", "default": 0}]}
    api.put("/config/things-value", json={"compatibility": "BACKWARD"})
    check = "/compatibility/subjects/things-value/versions"
    assert api.post(f"{check}/latest", json=body(needs_note)).json()["is_compatible"] is True
    assert api.post(f"{check}/1", json=body(needs_note)).json()["is_compatible"] is False
    api.put("/config/things-value", json={"compatibility": "BACKWARD_TRANSITIVE"})
    assert api.post("/subjects/things-value/versions", json=body(needs_note)).status_code == 409
    api.put("/config/things-value", json={"compatibility": "BACKWARD"})
    assert api.post("/subjects/things-value/versions", json=body(needs_note)).status_code == 200


def test_basic_auth_when_configured() -> None:
    api = TestClient(StandInSchemaRegistry(username="sr", password="s3cret").app)
    assert api.get("/subjects").status_code == 401
    assert api.get("/subjects", auth=("sr", "wrong")).json() == {"error_code": 401, "message": "Unauthorized"}
    assert api.get("/subjects", auth=("sr", "s3cret")).json() == []


def test_every_contract_registers_as_exported(api: TestClient) -> None:
    for name in contracts.EVENT_RECORDS:
        answer = api.post(f"/subjects/{name}-value/versions", json=body(contracts.self_contained_schema(name)))
        assert answer.status_code == 200, answer.text
