"""Schema ids from a Confluent Schema Registry, through confluent-kafka's own registry client
(auth, TLS, retries and its caches come with it).

Imported only when ``schema_registry.url`` is set: the client and its HTTP stack take about a
quarter of a second to import, which every process without a registry would pay at start.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit

import fastavro
from confluent_kafka.schema_registry import Schema as RegistrySchema
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError as ClientError
from fastavro.types import Schema

from selective_autonomy.config import SchemaRegistrySettings
from selective_autonomy.errors import SchemaRegistryError
from selective_autonomy.schemas import contracts
from selective_autonomy.streams.kafka_config import tls_config

T = TypeVar("T")

# Error codes of the Confluent Schema Registry API reference.
SUBJECT_NOT_FOUND = 40401
SCHEMA_NOT_FOUND = 40403


def client_config(settings: SchemaRegistrySettings) -> dict[str, Any]:
    """confluent-kafka's registry client properties for ``settings``: URL, basic auth and TLS pass through."""
    if not settings.url:
        raise SchemaRegistryError("schema registry URL is not configured")
    conf: dict[str, Any] = {
        "url": settings.url,
        "timeout": settings.timeout_s,
        "max.retries": settings.max_retries,
        # The client's default first back-off is 1 s: start-up against a registry that is down would
        # take seconds per request before it says so.
        "retries.wait.ms": 200,
    }
    if settings.username is not None:
        password = settings.password.get_secret_value() if settings.password else ""
        conf["basic.auth.user.info"] = f"{settings.username}:{password}"
    return conf | tls_config(settings)


def shown_url(url: str) -> str:
    """``url`` for messages: credentials written into it (``https://user:secret@host``) left out."""
    shown = []
    for part in url.split(","):
        parsed = urlsplit(part.strip())
        shown.append(parsed._replace(netloc=parsed.netloc.rpartition("@")[2]).geturl())
    return ",".join(shown)


def registry_text(record_name: str) -> str:
    """The schema text registered for ``record_name``: standard, self-contained Avro JSON."""
    return json.dumps(contracts.self_contained_schema(record_name))


class RegistrySchemaIds:
    """A Confluent Schema Registry: the current schema of each record under its ``<topic>-value``
    subject (TopicNameStrategy), registered or looked up once and cached; writer schemas fetched
    by id and cached.

    :param client: the registry client; default one built from ``settings`` (tests pass their own).
    """

    def __init__(self, settings: SchemaRegistrySettings, client: SchemaRegistryClient | None = None) -> None:
        self.settings = settings
        self._where = shown_url(settings.url or "")
        try:
            self._client = client or SchemaRegistryClient(client_config(settings))
        except (ValueError, TypeError, OSError) as exc:  # bad properties, unreadable certificate files
            raise SchemaRegistryError(f"schema registry client for {self._where}: {exc}") from exc
        self._ids: dict[tuple[str, str], int] = {}
        self._schemas: dict[int, tuple[str, Schema]] = {}
        self._lock = threading.Lock()

    def _error(self, what: str, exc: Exception) -> SchemaRegistryError:
        if isinstance(exc, ClientError):
            return SchemaRegistryError(f"schema registry at {self._where}: {what}: {exc}")
        # Transport failures surface as the HTTP library's own errors (httpx or httpx2, whichever the
        # client found), after its retries: say which registry and what was asked.
        return SchemaRegistryError(
            f"schema registry at {self._where} unreachable ({what}): {type(exc).__name__}: {exc}"
        )

    def _call(self, what: str, request: Callable[[], T]) -> T:
        try:
            return request()
        except Exception as exc:
            raise self._error(what, exc) from exc

    def prepare(self, subjects: Mapping[str, str]) -> None:
        """Register or look up every ``subject -> record`` now, so that a registry that is down or
        refuses a schema stops the process at start-up rather than at its first record."""
        for subject, record_name in subjects.items():
            self.id_for(record_name, subject)

    def id_for(self, record_name: str, subject: str) -> int:
        key = (record_name, subject)
        with self._lock:
            if key in self._ids:
                return self._ids[key]
        schema = RegistrySchema(registry_text(record_name), "AVRO")
        schema_id = self._register(subject, schema) if self.settings.auto_register else self._look_up(subject, schema)
        with self._lock:
            self._ids[key] = schema_id
            # The id stands for the current contract: records written under it decode without
            # asking the registry again, even while it is unreachable.
            self._schemas.setdefault(schema_id, (record_name, contracts.parsed_schema(record_name)))
        return schema_id

    def _registered(self, subject: str, schema: RegistrySchema) -> tuple[int | None, bool]:
        """The id of ``schema`` under ``subject`` (None when it is not there), and whether the subject exists."""
        try:
            return int(self._client.lookup_schema(subject, schema).schema_id), True  # type: ignore[arg-type]
        except ClientError as exc:
            if exc.error_code == SUBJECT_NOT_FOUND:
                return None, False
            if exc.error_code == SCHEMA_NOT_FOUND:
                return None, True
            raise self._error(f"look up {subject}", exc) from exc
        except Exception as exc:
            raise self._error(f"look up {subject}", exc) from exc

    def _look_up(self, subject: str, schema: RegistrySchema) -> int:
        schema_id, _ = self._registered(subject, schema)
        if schema_id is None:
            raise SchemaRegistryError(
                f"schema registry at {self._where}: the current schema is not registered under {subject} "
                "(schema_registry.auto_register is off: register it, or turn auto_register on)"
            )
        return schema_id

    def _register(self, subject: str, schema: RegistrySchema) -> int:
        level = self.settings.compatibility
        if level is not None:
            self._call(f"set {subject} to {level.value}", lambda: self._client.set_compatibility(subject, level.value))
        schema_id, subject_exists = self._registered(subject, schema)
        if schema_id is not None:  # a restart, another replica: its id, with no compatibility question
            return schema_id
        if subject_exists:
            compatible = self._call(f"check {subject}", lambda: self._client.test_compatibility(subject, schema))
            if not compatible:
                raise SchemaRegistryError(
                    f"schema registry at {self._where}: the current schema is not compatible with the latest "
                    f"version under {subject} (level {level.value if level else 'set by the registry'}); "
                    "see the README's evolution rules"
                )
        return self._call(f"register under {subject}", lambda: int(self._client.register_schema(subject, schema)))

    def writer_schema(self, schema_id: int) -> tuple[str, Schema]:
        with self._lock:
            if schema_id in self._schemas:
                return self._schemas[schema_id]
        found = self._call(f"fetch schema id {schema_id}", lambda: self._client.get_schema(schema_id))
        if (found.schema_type or "AVRO") != "AVRO":
            raise SchemaRegistryError(f"schema id {schema_id} is a {found.schema_type} schema, not Avro")
        if found.references:
            raise SchemaRegistryError(f"schema id {schema_id} uses schema references, which are not resolved here")
        try:
            raw = json.loads(found.schema_str or "")
            parsed = fastavro.parse_schema(raw)
        except (ValueError, TypeError, KeyError, fastavro.schema.SchemaParseException) as exc:
            raise SchemaRegistryError(f"schema id {schema_id} is not a usable Avro schema: {exc}") from exc
        name = str(raw.get("name", "")).rsplit(".", 1)[-1] if isinstance(raw, dict) else ""
        with self._lock:
            self._schemas[schema_id] = (name, parsed)
        return name, parsed
