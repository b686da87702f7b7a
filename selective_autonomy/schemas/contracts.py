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

from selective_autonomy.errors import ContractError

NAMESPACE = "selective_autonomy.events"

# Dependency order: a file may only name types defined in the files before it.
_SCHEMA_FILES: tuple[str, ...] = (
    "action.avsc",
    "stage.avsc",
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


_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
_NAMED = frozenset({"record", "enum", "fixed"})


def _full_name(name: str, namespace: str) -> str:
    return name if "." in name else f"{namespace}.{name}"


@cache
def _raw_named_types() -> dict[str, dict[str, Any]]:
    """Every named type of the contract files, by full name, as written in its file."""
    found: dict[str, dict[str, Any]] = {}

    def collect(node: Any, namespace: str) -> None:
        if isinstance(node, list):
            for branch in node:
                collect(branch, namespace)
        elif isinstance(node, dict):
            inner = namespace
            if node.get("type") in _NAMED:
                full = _full_name(node["name"], node.get("namespace", namespace))
                found[full] = node
                inner = full.rpartition(".")[0]
            for field in node.get("fields", []):
                collect(field["type"], inner)
            for key in ("items", "values"):
                if key in node:
                    collect(node[key], inner)
            if isinstance(node.get("type"), dict | list):
                collect(node["type"], inner)

    for filename in _SCHEMA_FILES:
        collect(_read_avsc(filename), NAMESPACE)
    return found


def self_contained_schema(record_name: str) -> dict[str, Any]:
    """The record's schema as standard Avro JSON that any implementation (or a Schema Registry)
    parses on its own: each named type defined once, where it is first used, under its full name,
    and no library-private keys (fastavro's expanded form carries ``__fastavro_parsed``)."""
    named = _raw_named_types()
    defined: set[str] = set()

    def inline(node: Any, namespace: str) -> Any:
        if isinstance(node, str):
            if node in _PRIMITIVES:
                return node
            full = _full_name(node, namespace)
            if full in defined:
                return full
            return inline(named[full], full.rpartition(".")[0])
        if isinstance(node, list):
            return [inline(branch, namespace) for branch in node]
        out = dict(node)
        inner = namespace
        if node.get("type") in _NAMED:
            full = _full_name(node["name"], node.get("namespace", namespace))
            defined.add(full)
            out["name"] = full
            out.pop("namespace", None)
            inner = full.rpartition(".")[0]
        if "fields" in node:
            out["fields"] = [{**field, "type": inline(field["type"], inner)} for field in node["fields"]]
        for key in ("items", "values"):
            if key in node:
                out[key] = inline(node[key], inner)
        if isinstance(node.get("type"), dict | list):
            out["type"] = inline(node["type"], inner)
        return out

    result: dict[str, Any] = inline(_full_name(record_name, NAMESPACE), NAMESPACE)
    return result


@cache
def expanded_schema(record_name: str) -> dict[str, Any]:
    """The record's schema with every named type inlined: what a Schema Registry stores."""
    expanded = fastavro.schema.expand_schema(parsed_schema(record_name))
    if not isinstance(expanded, dict):  # every contract is a record; a union or name here is a broken .avsc
        raise ContractError(f"{record_name} does not expand to a record schema")
    return expanded


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
