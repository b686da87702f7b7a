"""Process schemas read from the models directory: cached, reloaded on change, never from a hostile id."""

from __future__ import annotations

from pathlib import Path

import pytest

from selective_autonomy.schemas.schema_files import SchemaFiles
from tests.factories import BILLING_TYPED as SCHEMA


def test_schema_files_reads_and_reloads_schema_files(tmp_path: Path) -> None:
    directory = SchemaFiles(tmp_path)
    assert directory.schema("billing") is None and directory.processes() == []
    (tmp_path / "billing").mkdir()
    SCHEMA.save(tmp_path / "billing" / "schema.yaml")
    assert directory.schema("billing") == SCHEMA
    assert directory.processes() == ["billing"]
    changed = SCHEMA.model_copy(update={"version": 2, "description": "a new version"})
    changed.save(tmp_path / "billing" / "schema.yaml")
    loaded = directory.schema("billing")
    assert loaded is not None and loaded.version == 2
    assert directory.schema("../etc") is None


@pytest.mark.parametrize("process_id", ["a\x00b", "../billing", "billing/..", "/etc", "..", "x" * 5000])
def test_schema_files_never_builds_a_path_from_a_hostile_id(tmp_path: Path, process_id: str) -> None:
    (tmp_path / "billing").mkdir()
    SCHEMA.save(tmp_path / "billing" / "schema.yaml")
    (tmp_path / "not an id").mkdir()
    SCHEMA.save(tmp_path / "not an id" / "schema.yaml")
    directory = SchemaFiles(tmp_path)
    assert directory.schema(process_id) is None
    assert directory.processes() == ["billing"]  # a directory that is no process id is not offered either


def test_schema_files_fall_back_to_given_schemas_and_list_them(tmp_path: Path) -> None:
    broken = tmp_path / "billing"
    broken.mkdir()
    (broken / "schema.yaml").write_text("process_id: [not, a, schema\n")
    files = SchemaFiles(tmp_path, extra={"billing": SCHEMA, "shipping": SCHEMA})
    assert files.schema("billing") == SCHEMA  # an unreadable file: the schema given directly
    assert files.schema("shipping") == SCHEMA
    assert files.processes() == ["billing", "shipping"]
