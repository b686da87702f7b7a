"""Where schema ids for the Confluent wire format come from.

Two resolvers share one small interface: the id map shipped in the package (no registry needed)
and a Confluent Schema Registry reached over its REST API.
"""

from __future__ import annotations

import json
import threading
from functools import cache
from importlib import resources
from typing import Any, Protocol

import fastavro
import httpx
from fastavro.types import Schema

from selective_autonomy.config import SchemaRegistrySettings
from selective_autonomy.errors import SchemaRegistryError
from selective_autonomy.schemas import contracts


class SchemaIdResolver(Protocol):
    def id_for(self, record_name: str, subject: str) -> int:
        """The id under which the current schema of ``record_name`` is written."""
        ...

    def writer_schema(self, schema_id: int) -> tuple[str, Schema]:
        """The record name and parsed writer schema behind ``schema_id``."""
        ...


@cache
def _package_id_map() -> dict[int, tuple[str, int]]:
    text = resources.files("selective_autonomy.schemas").joinpath("schema_ids.json").read_text()
    raw: dict[str, Any] = json.loads(text)
    return {int(key): (entry["record"], int(entry["version"])) for key, entry in raw.items() if not key.startswith("_")}


class PackageSchemaIds:
    """Ids from ``schemas/schema_ids.json``; only the current version of each record is writable."""

    def __init__(self) -> None:
        self._by_id = _package_id_map()
        self._current: dict[str, int] = {}
        for schema_id, (record, version) in self._by_id.items():
            best = self._current.get(record)
            if best is None or version > self._by_id[best][1]:
                self._current[record] = schema_id

    def id_for(self, record_name: str, subject: str) -> int:
        try:
            return self._current[record_name]
        except KeyError:
            raise SchemaRegistryError(f"no schema id for record {record_name!r} in the package id map") from None

    def writer_schema(self, schema_id: int) -> tuple[str, Schema]:
        if schema_id not in self._by_id:
            raise SchemaRegistryError(f"unknown schema id {schema_id} (not in the package id map)")
        record, version = self._by_id[schema_id]
        if schema_id == self._current[record]:
            return record, contracts.parsed_schema(record)
        return record, contracts.historical_schema(record, version)


class RegistrySchemaIds:
    """A Confluent Schema Registry: registers the current schemas under ``<topic>-value`` subjects
    and fetches writer schemas by id, caching both."""

    def __init__(self, settings: SchemaRegistrySettings, client: httpx.Client | None = None) -> None:
        if not settings.url:
            raise SchemaRegistryError("schema registry URL is not configured")
        auth = None
        if settings.username is not None:
            password = settings.password.get_secret_value() if settings.password else ""
            auth = httpx.BasicAuth(settings.username, password)
        self._client = client or httpx.Client(base_url=settings.url, auth=auth, timeout=settings.timeout_s)
        self._ids: dict[tuple[str, str], int] = {}
        self._schemas: dict[int, tuple[str, Schema]] = {}
        self._lock = threading.Lock()

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._client.request(
                method, path, headers={"Content-Type": "application/vnd.schemaregistry.v1+json"}, **kwargs
            )
        except httpx.HTTPError as exc:
            raise SchemaRegistryError(f"schema registry unreachable: {exc}") from exc
        if response.status_code >= 400:
            raise SchemaRegistryError(f"schema registry {method} {path}: {response.status_code} {response.text}")
        return response.json()

    def id_for(self, record_name: str, subject: str) -> int:
        key = (record_name, subject)
        with self._lock:
            if key in self._ids:
                return self._ids[key]
        body = {"schema": json.dumps(contracts.self_contained_schema(record_name))}
        answer = self._request("POST", f"/subjects/{subject}/versions", json=body)
        schema_id = int(answer["id"])
        with self._lock:
            self._ids[key] = schema_id
        return schema_id

    def writer_schema(self, schema_id: int) -> tuple[str, Schema]:
        with self._lock:
            if schema_id in self._schemas:
                return self._schemas[schema_id]
        answer = self._request("GET", f"/schemas/ids/{schema_id}")
        raw = json.loads(answer["schema"])
        parsed = fastavro.parse_schema(raw)
        name = str(raw.get("name", "")).rsplit(".", 1)[-1]
        with self._lock:
            self._schemas[schema_id] = (name, parsed)
        return name, parsed


def resolver_for(settings: SchemaRegistrySettings) -> SchemaIdResolver:
    return RegistrySchemaIds(settings) if settings.url else PackageSchemaIds()
