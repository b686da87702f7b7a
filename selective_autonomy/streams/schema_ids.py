"""Where schema ids for the Confluent wire format come from.

Two resolvers share one small interface: the id map shipped in the package (no registry needed),
here, and a Confluent Schema Registry (:mod:`selective_autonomy.streams.registry`).
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any, Protocol

from fastavro.types import Schema

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
