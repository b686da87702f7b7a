"""Load the Avro contracts shipped in ``schemas/avro`` with fastavro.

The ``.avsc`` files are the source of truth; the pydantic models in ``events`` mirror them.
Named types shared between records (``Action``, ``UIState``) live in their own files and are
loaded first so that later files can refer to them by full name.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

import fastavro
from fastavro.types import Schema

NAMESPACE = "selective_autonomy.events"

# Dependency order: a file may only name types defined in the files before it.
_SCHEMA_FILES: tuple[str, ...] = (
    "action.avsc",
    "ui_state.avsc",
    "ui_state_changed.avsc",
    "action_proposed.avsc",
    "action_executed.avsc",
    "operator_deferral.avsc",
    "copilot_feedback.avsc",
    "dead_letter.avsc",
    "stage_changed.avsc",
    "action_failed.avsc",
)

# The top-level records that travel on topics.
EVENT_RECORDS: tuple[str, ...] = (
    "UIStateChanged",
    "ActionProposed",
    "ActionExecuted",
    "OperatorDeferral",
    "CopilotFeedback",
    "DeadLetter",
    "StageChanged",
    "ActionFailed",
)


def _read_avsc(filename: str) -> dict[str, Any]:
    text = resources.files("selective_autonomy.schemas").joinpath("avro", filename).read_text()
    parsed: dict[str, Any] = json.loads(text)
    return parsed


@cache
def _named_schemas() -> dict[str, Schema]:
    named: dict[str, Any] = {}
    by_name: dict[str, Schema] = {}
    for filename in _SCHEMA_FILES:
        raw = _read_avsc(filename)
        parsed = fastavro.parse_schema(raw, named_schemas=named)
        by_name[raw["name"]] = parsed
    return by_name


def parsed_schema(record_name: str) -> Schema:
    """The fastavro-parsed schema of a record, e.g. ``"UIStateChanged"``."""
    schemas = _named_schemas()
    if record_name not in schemas:
        raise KeyError(f"unknown Avro record {record_name!r}; known: {sorted(schemas)}")
    return schemas[record_name]


@cache
def expanded_schema(record_name: str) -> dict[str, Any]:
    """The record's schema with every named type inlined: what a Schema Registry stores."""
    expanded = fastavro.schema.expand_schema(parsed_schema(record_name))
    assert isinstance(expanded, dict)
    return expanded


def canonical_schema_text(record_name: str) -> str:
    """Parsing Canonical Form, used to compare schema versions and register them."""
    text: str = fastavro.schema.to_parsing_canonical_form(parsed_schema(record_name))
    return text


def field_names(record_name: str) -> list[str]:
    return [f["name"] for f in expanded_schema(record_name)["fields"]]


@cache
def historical_schema(record_name: str, version: int) -> Schema:
    """An earlier version of a record, kept as ``avro/history/<Record>.v<N>.avsc`` (fully expanded)
    so that records written with it still decode after the record has evolved."""
    path = resources.files("selective_autonomy.schemas").joinpath("avro", "history", f"{record_name}.v{version}.avsc")
    if not path.is_file():
        raise KeyError(f"no historical schema {record_name} v{version}")
    parsed: Schema = fastavro.parse_schema(json.loads(path.read_text()))
    return parsed
