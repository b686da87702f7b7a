"""The committed OpenAPI document of the console's JSON API is the app's, and states the id rules."""

from __future__ import annotations

import json
from pathlib import Path

from selective_autonomy.console.openapi import openapi_document
from selective_autonomy.schemas.identifiers import NAME_PATTERN, OPAQUE_ID_PATTERN, PROCESS_ID_PATTERN

OPENAPI = Path(__file__).parents[3] / "docs" / "openapi-console.json"


def test_the_committed_document_is_up_to_date() -> None:
    committed = json.loads(OPENAPI.read_text())
    assert committed == openapi_document(), "regenerate: selauto console-openapi --out docs/openapi-console.json"


def test_every_api_operation_needs_the_bearer_token_and_states_its_id_patterns() -> None:
    document = openapi_document()
    assert set(document["components"]["securitySchemes"]) == {"bearerAuth"}
    patterns = {"deferral_id": OPAQUE_ID_PATTERN, "action_id": OPAQUE_ID_PATTERN, "process_id": PROCESS_ID_PATTERN}
    for path, operations in document["paths"].items():
        for operation in operations.values():
            if path == "/healthz":
                assert "security" not in operation
                continue
            assert operation["security"] == [{"bearerAuth": []}], path
            assert "401" in operation["responses"], path
            for parameter in operation.get("parameters", []):
                assert parameter["schema"]["pattern"] == patterns[parameter["name"]], path
    action = document["components"]["schemas"]["ActionInput"]["properties"]
    assert action["action_type"]["pattern"] == NAME_PATTERN
    assert action["arguments"]["additionalProperties"] is False
