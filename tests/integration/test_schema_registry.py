"""Schema Registry mode: the project's codec against confluent-kafka's own ``AvroSerializer`` and
``AvroDeserializer`` (an independent implementation of the Confluent wire format) on the real
broker, for every contract and both ways, and through a registry-configured worker; start-up
errors (registry down, incompatible schema, missing subject, bad credentials); basic auth and TLS.

No Schema Registry server installs from the package registries: the registry is the stand-in of
``selective_autonomy/streams/registry_standin.py``, served over HTTP(S) on loopback, and every
client here (the project's and confluent-kafka's) talks to it over its REST API.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import SecretStr

from selective_autonomy.agents.worker import build_worker
from selective_autonomy.config import SchemaRegistrySettings, Settings
from selective_autonomy.edges.standin import serve_in_thread
from selective_autonomy.errors import DecodeError, SchemaRegistryError
from selective_autonomy.schemas import contracts
from selective_autonomy.schemas.event_parts import DeferralReason, Stage
from selective_autonomy.schemas.events import (
    EVENT_MODELS,
    ActionExecuted,
    ActionProposed,
    EventModel,
    OperatorDeferral,
    UIStateChanged,
)
from selective_autonomy.streams.consumer import EventConsumer
from selective_autonomy.streams.kafka_config import confluent_config
from selective_autonomy.streams.producer import EventProducer
from selective_autonomy.streams.registry import RegistrySchemaIds
from selective_autonomy.streams.registry_standin import StandInSchemaRegistry
from selective_autonomy.streams.serialization import codec_for
from selective_autonomy.streams.topics import RECORD_OF_ROLE, value_subjects
from tests.factories import samples
from tests.integration.decide_support import FLOW, decided, install_models, run_worker, state

pytestmark = pytest.mark.integration

USER, PASSWORD = "selauto", "registry-secret"
WORKTREE = Path(__file__).resolve().parents[2]


@dataclass
class Registry:
    standin: StandInSchemaRegistry
    url: str

    def client(self) -> SchemaRegistryClient:
        """confluent-kafka's registry client, configured on its own (not through the project)."""
        return SchemaRegistryClient({"url": self.url, "basic.auth.user.info": f"{USER}:{PASSWORD}"})


@pytest.fixture
def registry() -> Iterator[Registry]:
    standin = StandInSchemaRegistry(username=USER, password=PASSWORD)
    with serve_in_thread(standin.app) as url:
        yield Registry(standin, url)


def on_registry(settings: Settings, url: str, **fields: Any) -> Settings:
    credentials: dict[str, Any] = {"username": USER, "password": SecretStr(PASSWORD)}
    registry = SchemaRegistrySettings(url=url, **(credentials | fields))
    return settings.model_copy(update={"schema_registry": registry})


def topic_of(settings: Settings, record: str) -> str:
    role = next(role for role, name in RECORD_OF_ROLE.items() if name == record)
    return settings.topics.names()[role]


def header_id(data: bytes) -> int:
    assert data[0] == 0, "Confluent wire format: magic byte 0"
    return int.from_bytes(data[1:5], "big")


def read_raw(settings: Settings, topic: str, count: int, timeout_s: float = 30.0) -> list[bytes]:
    """``count`` record values of ``topic`` with a plain confluent-kafka consumer (no decoding)."""
    consumer = Consumer(confluent_config(settings.kafka, "consumer", **{"group.id": f"raw-{uuid.uuid4().hex[:8]}"}))
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        values: list[bytes] = []
        deadline = dt.datetime.now() + dt.timedelta(seconds=timeout_s)
        while len(values) < count and dt.datetime.now() < deadline:
            message = consumer.poll(0.2)
            if message is not None and message.error() is None and message.value() is not None:
                values.append(message.value())
        assert len(values) == count, f"{len(values)} of {count} records on {topic}"
        return values
    finally:
        consumer.close()


def confluent_decode(client: SchemaRegistryClient, topic: str, data: bytes, model: type[EventModel]) -> EventModel:
    record = AvroDeserializer(client)(data, SerializationContext(topic, MessageField.VALUE))
    return model.from_avro(record)


def confluent_serializer(client: SchemaRegistryClient, record: str) -> AvroSerializer:
    """confluent-kafka's serializer with the exported contract (TopicNameStrategy, auto-register)."""
    return AvroSerializer(
        client, json.dumps(contracts.self_contained_schema(record)), to_dict=lambda event, ctx: event.to_avro()
    )


def by_record(events: list[EventModel]) -> dict[str, list[EventModel]]:
    grouped: dict[str, list[EventModel]] = {}
    for event in events:
        grouped.setdefault(event.avro_name, []).append(event)
    return grouped


# -- every contract, both ways, on the broker ---------------------------------------------------


def test_records_the_project_produces_decode_with_confluent_kafkas_deserializer(
    make_settings: Callable[..., Settings], registry: Registry
) -> None:
    settings = on_registry(make_settings(partitions=1), registry.url)
    codec = codec_for(settings)
    subjects = value_subjects(settings.topics)
    assert set(registry.standin.subjects()) == set(subjects)  # registered at start-up, before any record
    assert {registry.standin.level_of(subject) for subject in subjects} == {"BACKWARD"}
    events = by_record(samples())
    with EventProducer(settings, codec) as producer:
        for record, batch in events.items():
            for event in batch:
                producer.send(topic_of(settings, record), event, key=record)
    client = registry.client()
    for record, batch in events.items():
        topic = topic_of(settings, record)
        values = read_raw(settings, topic, len(batch))
        registered = client.get_latest_version(f"{topic}-value").schema_id
        assert {header_id(value) for value in values} == {registered}
        assert [confluent_decode(client, topic, value, EVENT_MODELS[record]) for value in values] == batch


def test_records_confluent_kafkas_serializer_produces_decode_in_the_project(
    make_settings: Callable[..., Settings], registry: Registry
) -> None:
    settings = on_registry(make_settings(partitions=1), registry.url)
    client = registry.client()
    producer = Producer(confluent_config(settings.kafka, "producer"))
    events = by_record(samples())
    for record, batch in events.items():
        topic = topic_of(settings, record)
        serializer = confluent_serializer(client, record)
        for event in batch:
            producer.produce(topic, serializer(event, SerializationContext(topic, MessageField.VALUE)), key=record)
    assert producer.flush(15) == 0
    # confluent-kafka's serializer registered the subjects; the project finds the same ids.
    codec = codec_for(settings)
    assert isinstance(codec.resolver, RegistrySchemaIds)
    for record, batch in events.items():
        topic = topic_of(settings, record)
        assert codec.resolver.id_for(record, f"{topic}-value") == client.get_latest_version(f"{topic}-value").schema_id
        with EventConsumer(settings, [topic], EVENT_MODELS[record], codec=codec) as consumer:
            received = consumer.take(len(batch))
        assert [r.error for r in received] == [None] * len(batch)
        assert [r.event for r in received] == batch


def test_a_registry_configured_worker_registers_its_subjects_and_talks_with_confluent_kafka(
    make_settings: Callable[..., Settings], registry: Registry, tmp_path: Path
) -> None:
    """UI states from confluent-kafka's serializer go in; the worker registers its subjects at
    start-up, decides, and its decisions come out readable by confluent-kafka's deserializer."""
    settings = on_registry(make_settings(partitions=2), registry.url).model_copy(
        update={"models_dir": tmp_path / "models"}
    )
    install_models(settings.models_dir, {"retail": Stage.selective, "vip": Stage.copilot, "lab": Stage.logging})
    client = registry.client()
    ui = settings.topics.ui_state
    serializer = confluent_serializer(client, "UIStateChanged")
    producer = Producer(confluent_config(settings.kafka, "producer"))
    for cluster in ("retail", "vip", "lab"):
        event = state(f"{cluster}-1", 0, cluster)
        producer.produce(ui, serializer(event, SerializationContext(ui, MessageField.VALUE)), key=event.session_id)
    assert producer.flush(15) == 0
    assert registry.standin.subjects() == [f"{ui}-value"]

    worker = run_worker(settings, decided(3))

    assert set(registry.standin.subjects()) == set(value_subjects(settings.topics))
    assert worker.metrics.skipped.get("undecodable", 0) == 0  # type: ignore[attr-defined]
    topics = settings.topics
    outputs: dict[str, list[EventModel]] = {}
    for topic, model in (
        (topics.actions_executed, ActionExecuted),
        (topics.operator_deferrals, OperatorDeferral),
        (topics.actions_proposed, ActionProposed),
    ):
        [value] = read_raw(settings, topic, 1)
        assert header_id(value) == client.get_latest_version(f"{topic}-value").schema_id
        outputs[topic] = [confluent_decode(client, topic, value, model)]
    [executed] = outputs[topics.actions_executed]
    [deferred] = outputs[topics.operator_deferrals]
    [proposed] = outputs[topics.actions_proposed]
    assert isinstance(executed, ActionExecuted) and (executed.session_id, executed.action) == ("retail-1", FLOW[0])
    assert isinstance(deferred, OperatorDeferral)
    assert (deferred.session_id, deferred.reason) == ("vip-1", DeferralReason.copilot_stage)
    assert proposed.session_id == "lab-1"  # type: ignore[attr-defined]


# -- start-up: a clear error, never a silent fallback to the shipped ids -------------------------


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def local_settings(tmp_path: Path, url: str, **fields: Any) -> Settings:
    base = Settings(data_dir=tmp_path / "data", models_dir=tmp_path / "models")
    return on_registry(base, url, **fields)


def test_a_registry_that_is_down_stops_the_worker_at_start_up(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    with pytest.raises(SchemaRegistryError, match=f"schema registry at {url} unreachable"):
        build_worker(local_settings(tmp_path, url))


@pytest.mark.parametrize(
    ("command", "needs"),
    [
        (["worker"], {}),
        (["ingest", "http"], {"SELAUTO_INGEST__TOKENS": '{"crm": "a-token-of-twenty-chars"}'}),
        (["console"], {}),
        (
            ["executor", "--health-port", "0"],
            {
                "SELAUTO_EXECUTOR__HTTP__BASE_URL": "http://127.0.0.1:9",
                "SELAUTO_EXECUTOR__HTTP__ROUTES": '{"*": {"url": "/actions"}}',
            },
        ),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else "",
)
def test_each_service_says_so_and_exits(tmp_path: Path, command: list[str], needs: dict[str, str]) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(WORKTREE),
        "SELAUTO_SCHEMA_REGISTRY__URL": url,
        "SELAUTO_DATA_DIR": str(tmp_path / "data"),
        "SELAUTO_MODELS_DIR": str(tmp_path / "models"),
        **needs,
    }
    run = subprocess.run(
        [sys.executable, "-c", "from selective_autonomy.cli import app; app()", *command],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2, run.stderr[-2000:]
    assert f"error: schema registry at {url} unreachable" in run.stderr
    assert "Traceback" not in run.stderr


def test_an_incompatible_schema_is_refused_before_the_first_record(tmp_path: Path, registry: Registry) -> None:
    settings = local_settings(tmp_path, registry.url)
    subject = f"{settings.topics.ui_state}-value"
    # An earlier UIStateChanged that lacks fields the current one requires: BACKWARD refuses it.
    earlier = {
        "type": "record",
        "name": "UIStateChanged",
        "namespace": contracts.NAMESPACE,
        "fields": [{"name": "schema_version", "type": "int", "default": 1}],
    }
    client = registry.client()
    client.register_schema(subject, Schema(json.dumps(earlier), "AVRO"))
    with pytest.raises(SchemaRegistryError, match=f"not compatible with the latest version under {subject}"):
        codec_for(settings)
    assert client.get_versions(subject) == [1]


def test_with_auto_register_off_the_subjects_must_already_exist(tmp_path: Path, registry: Registry) -> None:
    look_up_only = local_settings(tmp_path, registry.url, auto_register=False)
    with pytest.raises(SchemaRegistryError, match=r"not registered under .*auto_register is off"):
        codec_for(look_up_only)
    assert registry.standin.subjects() == []
    registering = codec_for(local_settings(tmp_path, registry.url))
    registry.standin.calls.clear()
    codec = codec_for(look_up_only)
    assert not [call for call in registry.standin.calls if not call.startswith("POST /subjects/")]
    assert isinstance(codec.resolver, RegistrySchemaIds) and isinstance(registering.resolver, RegistrySchemaIds)
    for subject, record in value_subjects(look_up_only.topics).items():
        assert codec.resolver.id_for(record, subject) == registering.resolver.id_for(record, subject)


def test_wrong_credentials_are_a_start_up_error(tmp_path: Path, registry: Registry) -> None:
    with pytest.raises(SchemaRegistryError, match="Unauthorized"):
        codec_for(local_settings(tmp_path, registry.url, password=SecretStr("wrong")))
    with pytest.raises(SchemaRegistryError, match="Unauthorized"):
        codec_for(local_settings(tmp_path, registry.url, username=None, password=None))


def test_after_start_up_only_ids_never_seen_need_the_registry(tmp_path: Path) -> None:
    standin = StandInSchemaRegistry(username=USER, password=PASSWORD)
    with serve_in_thread(standin.app) as url:
        settings = local_settings(tmp_path, url, max_retries=0)
        codec = codec_for(settings)
    event = state("s-1", 0, "retail")  # the registry has stopped from here on
    data = codec.encode(event, settings.topics.ui_state)
    assert codec.decode(data, UIStateChanged) == event
    with pytest.raises(DecodeError, match="unreachable"):
        codec.decode(b"\x00" + (999).to_bytes(4, "big") + data[5:], UIStateChanged)


# -- TLS ------------------------------------------------------------------------------------------


@dataclass
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _issue(
    subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Certificate | None, issuer_key: Any, **kind: Any
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if kind.get("server"):
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    out = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _issue("test CA", ca_key, None, ca_key)
    files: dict[str, Path] = {}
    for role in ("server", "client"):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _issue(role, key, ca, ca_key, server=role == "server")
        files[f"{role}_cert"] = out / f"{role}.pem"
        files[f"{role}_cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        files[f"{role}_key"] = out / f"{role}.key"
        files[f"{role}_key"].write_bytes(_key_pem(key))
    (out / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    return Pki(ca=out / "ca.pem", **files)


def test_tls_settings_pass_through_to_the_registry_client(tmp_path: Path, pki: Pki) -> None:
    standin = StandInSchemaRegistry(username=USER, password=PASSWORD)
    with serve_in_thread(
        standin.app,
        ssl_certfile=str(pki.server_cert),
        ssl_keyfile=str(pki.server_key),
        ssl_client_ca=str(pki.ca),
    ) as url:
        assert url.startswith("https://")
        with pytest.raises(SchemaRegistryError, match="unreachable"):  # the registry's CA is not trusted
            codec_for(local_settings(tmp_path, url, max_retries=0))
        with pytest.raises(SchemaRegistryError, match="unreachable"):  # trusted, but no client certificate
            codec_for(local_settings(tmp_path, url, ssl_ca_location=pki.ca, max_retries=0))
        assert standin.subjects() == []
        codec = codec_for(
            local_settings(
                tmp_path,
                url,
                ssl_ca_location=pki.ca,
                ssl_certificate_location=pki.client_cert,
                ssl_key_location=pki.client_key,
            )
        )
        assert isinstance(codec.resolver, RegistrySchemaIds)
        assert len(standin.subjects()) == len(contracts.EVENT_RECORDS)
