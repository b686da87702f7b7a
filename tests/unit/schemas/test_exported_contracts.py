"""`selauto schema export` writes standard, self-contained Avro: the Apache Avro reference
implementation (`avro` on PyPI) parses each file on its own, and records cross between it and
fastavro both ways."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import avro.io
import avro.schema
import fastavro
import pytest
from typer.testing import CliRunner

from selective_autonomy.cli import app
from selective_autonomy.schemas import contracts
from selective_autonomy.schemas.events import EventModel
from tests.factories import samples

NAMED = ("record", "enum", "fixed")
PRIMITIVES = ("null", "boolean", "int", "long", "float", "double", "bytes", "string")


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("contracts")
    result = CliRunner().invoke(app, ["schema", "export", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def problems(schema: Any) -> list[str]:
    """What keeps ``schema`` from being standard, self-contained Avro JSON: library-private keys,
    named types defined twice, or named before they are defined (in document order, which is the
    order a parser reads them)."""
    found: list[str] = []
    defined: set[str] = set()

    def walk(node: Any, namespace: str) -> None:
        if isinstance(node, str):
            if node not in PRIMITIVES:
                full = node if "." in node else f"{namespace}.{node}"
                if full not in defined:
                    found.append(f"{full} used before it is defined")
        elif isinstance(node, list):
            for branch in node:
                walk(branch, namespace)
        elif isinstance(node, dict):
            found.extend(f"private key {key}" for key in node if key.startswith("__"))
            inner = namespace
            if node.get("type") in NAMED:
                name = node["name"]
                full = name if "." in name else f"{node.get('namespace', namespace)}.{name}"
                if full in defined:
                    found.append(f"{full} defined twice")
                defined.add(full)
                inner = full.rpartition(".")[0]
            for field in node.get("fields", []):
                found.extend(f"private key {key}" for key in field if key.startswith("__"))
                walk(field["type"], inner)
            for key in ("items", "values"):
                if key in node:
                    walk(node[key], inner)
            if isinstance(node.get("type"), dict | list):
                walk(node["type"], inner)

    walk(schema, "")
    return found


def test_the_check_catches_fastavros_parsed_form() -> None:
    """What the export wrote before: fastavro's parsed form, with its private keys."""
    assert any("private key __fastavro_parsed" in p for p in problems(contracts.parsed_schema("ActionExecuted")))
    assert problems({"type": "record", "name": "a.R", "fields": [{"name": "x", "type": "a.Later"}]})


@pytest.mark.parametrize("name", contracts.EVENT_RECORDS)
def test_each_exported_contract_is_standard_and_self_contained(exported: Path, name: str) -> None:
    text = (exported / f"{name}.avsc").read_text()
    assert problems(json.loads(text)) == []
    parsed = avro.schema.parse(text)  # the reference implementation, with nothing else loaded
    assert isinstance(parsed, avro.schema.RecordSchema)
    assert parsed.fullname == f"{contracts.NAMESPACE}.{name}"


def read_with_avro(schema: avro.schema.Schema, data: bytes) -> Any:
    return avro.io.DatumReader(schema, schema).read(avro.io.BinaryDecoder(io.BytesIO(data)))


@pytest.mark.parametrize("event", samples(), ids=lambda e: e.avro_name)
def test_records_cross_between_the_reference_implementation_and_fastavro(exported: Path, event: EventModel) -> None:
    reference = avro.schema.parse((exported / f"{event.avro_name}.avsc").read_text())
    ours = contracts.parsed_schema(event.avro_name)

    # fastavro writes (as the project does), the reference implementation reads.
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, ours, event.to_avro())
    assert type(event).from_avro(read_with_avro(reference, buffer.getvalue())) == event

    # The reference implementation writes, fastavro reads the same values it does. (Its Python
    # writer takes the *last* union branch a value fits, so an argument 2 in
    # ["null", "boolean", "long", "double", "string"] travels as 2.0: a choice of that writer,
    # which is why the values are compared with its own reading rather than with the event.)
    written = io.BytesIO()
    avro.io.DatumWriter(reference).write(event.to_avro(), avro.io.BinaryEncoder(written))
    by_fastavro = fastavro.schemaless_reader(io.BytesIO(written.getvalue()), ours, ours)
    assert by_fastavro == read_with_avro(reference, written.getvalue())
