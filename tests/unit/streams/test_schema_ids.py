"""Registry settings, the client properties they become, and the codec without a registry.
(The registry conversation itself is tested over HTTP in tests/integration/test_schema_registry.py.)"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.schema_registry import Schema
from pydantic import SecretStr, ValidationError

from selective_autonomy.config import SchemaRegistrySettings, Settings, TopicSettings, WireFormat
from selective_autonomy.errors import SchemaRegistryError
from selective_autonomy.schemas import contracts
from selective_autonomy.schemas.event_parts import UIState
from selective_autonomy.schemas.events import UIStateChanged
from selective_autonomy.streams.registry import RegistrySchemaIds, client_config, registry_text, shown_url
from selective_autonomy.streams.schema_ids import PackageSchemaIds
from selective_autonomy.streams.serialization import codec_for
from selective_autonomy.streams.topics import value_subjects

EVENT = UIStateChanged(session_id="s1", process_id="p", business_cluster="c", state_version=2, ui_state=UIState())


def test_client_config_passes_basic_auth_and_tls_through(tmp_path: Path) -> None:
    settings = SchemaRegistrySettings(
        url="https://sr-1:8081,https://sr-2:8081",
        username="selauto",
        password=SecretStr("pa:ss"),
        ssl_ca_location=tmp_path / "ca.pem",
        ssl_certificate_location=tmp_path / "client.pem",
        ssl_key_location=tmp_path / "client.key",
        ssl_key_password=SecretStr("k"),
        timeout_s=2.5,
        max_retries=1,
    )
    conf = client_config(settings)
    assert conf["url"] == "https://sr-1:8081,https://sr-2:8081"
    assert conf["basic.auth.user.info"] == "selauto:pa:ss"
    assert conf["ssl.ca.location"] == str(tmp_path / "ca.pem")
    assert conf["ssl.certificate.location"] == str(tmp_path / "client.pem")
    assert conf["ssl.key.location"] == str(tmp_path / "client.key")
    assert conf["ssl.key.password"] == "k"
    assert (conf["timeout"], conf["max.retries"]) == (2.5, 1)


def test_client_config_without_credentials_sends_none() -> None:
    conf = client_config(SchemaRegistrySettings(url="http://sr:8081"))
    assert not {key for key in conf if key.startswith(("ssl.", "basic."))}


def test_messages_leave_credentials_in_the_url_out() -> None:
    assert shown_url("https://u:secret@sr-1:8081/x, http://sr-2:8081") == "https://sr-1:8081/x,http://sr-2:8081"


def test_unreadable_tls_files_are_a_registry_error(tmp_path: Path) -> None:
    settings = SchemaRegistrySettings(url="https://sr:8081", ssl_ca_location=tmp_path / "missing.pem")
    with pytest.raises(SchemaRegistryError, match="sr:8081"):
        RegistrySchemaIds(settings)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"ssl_key_location": Path("k.pem")}, "ssl_certificate_location"),
        ({"password": SecretStr("x")}, "username"),
    ],
)
def test_incomplete_credentials_are_refused(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        SchemaRegistrySettings(url="https://sr:8081", **fields)


def test_a_registry_needs_the_confluent_wire_format() -> None:
    with pytest.raises(ValidationError, match="bare Avro carries no schema id"):
        Settings(schema_registry=SchemaRegistrySettings(url="http://sr:8081"), wire_format=WireFormat.avro)


def test_registry_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SELAUTO_SCHEMA_REGISTRY__URL", "https://sr:8081")
    monkeypatch.setenv("SELAUTO_SCHEMA_REGISTRY__PASSWORD", "hunter2")
    monkeypatch.setenv("SELAUTO_SCHEMA_REGISTRY__USERNAME", "selauto")
    monkeypatch.setenv("SELAUTO_SCHEMA_REGISTRY__COMPATIBILITY", "FULL")
    registry = Settings().schema_registry
    assert (registry.url, registry.username, registry.compatibility) == ("https://sr:8081", "selauto", "FULL")
    assert "hunter2" not in repr(registry)


def test_without_a_registry_every_site_gets_the_shipped_ids() -> None:
    codec = codec_for(Settings())
    assert isinstance(codec.resolver, PackageSchemaIds)
    assert struct.unpack(">bI", codec.encode(EVENT, "ui.state")[:5]) == (0, 1001)


def test_each_topic_has_a_value_subject_for_its_record() -> None:
    subjects = value_subjects(TopicSettings(ui_state="crm.ui", stage_changes="ops.stages"))
    assert subjects["crm.ui-value"] == "UIStateChanged"
    assert subjects["ops.stages-value"] == "StageChanged"
    assert sorted(subjects.values()) == sorted(contracts.EVENT_RECORDS)


def test_the_registered_text_is_the_exported_contract() -> None:
    for name in contracts.EVENT_RECORDS:
        assert json.loads(registry_text(name)) == contracts.self_contained_schema(name)


class _OneSchema:
    """A registry client that knows one schema id (only ``get_schema`` is called here)."""

    def __init__(self, schema: Schema) -> None:
        self.schema = schema

    def get_schema(self, schema_id: int) -> Schema:
        return self.schema


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        (Schema('syntax = "proto3";', "PROTOBUF"), "PROTOBUF schema, not Avro"),
        (Schema('{"type": "record", "name": "X", "fields": [{"name": "a", "type": "Nope"}]}'), "not a usable Avro"),
    ],
)
def test_writer_schemas_this_codec_cannot_use_are_refused(schema: Schema, message: str) -> None:
    resolver = RegistrySchemaIds(SchemaRegistrySettings(url="http://sr:8081"), client=_OneSchema(schema))  # type: ignore[arg-type]
    with pytest.raises(SchemaRegistryError, match=message):
        resolver.writer_schema(7)
