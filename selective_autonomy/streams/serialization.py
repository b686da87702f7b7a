"""Avro (de)serialization of contract events with fastavro, in the Confluent wire format
(magic byte 0, 4-byte big-endian schema id, schemaless Avro body) or as bare Avro.

Decoding resolves the writer's schema by id and reads into the current reader schema, so records
written by an older schema version (with fewer optional fields) decode with defaults filled in.
Every failure becomes a :class:`DecodeError` whose message says what was wrong; callers route the
original bytes to the dead-letter topic with that message.

:func:`codec_for` builds the codec that every producer and consumer of the project uses.
"""

from __future__ import annotations

import io
import struct
from typing import TypeVar

import fastavro
from pydantic import ValidationError

from selective_autonomy.config import Settings, WireFormat
from selective_autonomy.errors import ContractError, DecodeError, SchemaRegistryError
from selective_autonomy.schemas import contracts
from selective_autonomy.schemas.events import EventModel
from selective_autonomy.streams.schema_ids import PackageSchemaIds, SchemaIdResolver
from selective_autonomy.streams.topics import value_subjects

MAGIC_BYTE = 0
_HEADER = struct.Struct(">bI")

E = TypeVar("E", bound=EventModel)


class AvroCodec:
    """Encodes and decodes contract events; one instance per process is enough."""

    def __init__(self, wire_format: WireFormat = WireFormat.confluent, resolver: SchemaIdResolver | None = None):
        self.wire_format = wire_format
        self.resolver: SchemaIdResolver = resolver or PackageSchemaIds()

    def encode(self, event: EventModel, topic: str = "") -> bytes:
        schema = contracts.parsed_schema(event.avro_name)
        buffer = io.BytesIO()
        if self.wire_format is WireFormat.confluent:
            buffer.write(_HEADER.pack(MAGIC_BYTE, self.resolver.id_for(event.avro_name, f"{topic}-value")))
        try:
            fastavro.schemaless_writer(buffer, schema, event.to_avro())
        except (ValueError, TypeError, KeyError, OverflowError) as exc:
            raise ContractError(f"{event.avro_name} does not fit its Avro schema: {exc}") from exc
        return buffer.getvalue()

    def decode(self, data: bytes | None, model: type[E]) -> E:
        if data is None:
            raise DecodeError("record has no value (tombstone)")
        reader_schema = contracts.parsed_schema(model.avro_name)
        writer_schema = reader_schema
        body = memoryview(data)
        if self.wire_format is WireFormat.confluent:
            if len(data) < _HEADER.size:
                raise DecodeError(f"{len(data)} bytes is too short for the Confluent wire format header")
            magic, schema_id = _HEADER.unpack_from(data)
            if magic != MAGIC_BYTE:
                raise DecodeError(f"unknown magic byte {magic} (expected {MAGIC_BYTE}: Confluent wire format)")
            try:
                record_name, writer_schema = self.resolver.writer_schema(schema_id)
            except SchemaRegistryError as exc:
                raise DecodeError(str(exc)) from exc
            if record_name != model.avro_name:
                raise DecodeError(f"schema id {schema_id} is a {record_name}, expected a {model.avro_name}")
            body = body[_HEADER.size :]
        stream = io.BytesIO(body)
        try:
            record = fastavro.schemaless_reader(stream, writer_schema, reader_schema)
        except Exception as exc:  # fastavro raises many types on corrupt input
            raise DecodeError(f"undecodable {model.avro_name} body: {type(exc).__name__}: {exc}") from exc
        if stream.tell() != len(body):
            raise DecodeError(f"{len(body) - stream.tell()} trailing bytes after the {model.avro_name} record")
        if not isinstance(record, dict):
            raise DecodeError(f"{model.avro_name} body decoded to {type(record).__name__}, not a record")
        try:
            return model.from_avro(record)
        except ValidationError as exc:
            raise DecodeError(f"invalid {model.avro_name}: {_summarise(exc)}") from exc


def codec_for(settings: Settings) -> AvroCodec:
    """The codec for ``settings``: without ``schema_registry.url``, the ids shipped in the package;
    with it, ids from the registry, every ``<topic>-value`` subject of the project's topics
    registered (or looked up) and checked now, so that a registry that is down or refuses a schema
    stops the process at start-up (:class:`SchemaRegistryError`), never a silent fallback.

    Build one per process and share it: each one asks the registry again.
    """
    if not settings.schema_registry.url:
        return AvroCodec(settings.wire_format)
    from selective_autonomy.streams.registry import RegistrySchemaIds  # only with a registry: see its docstring

    resolver = RegistrySchemaIds(settings.schema_registry)
    resolver.prepare(value_subjects(settings.topics))
    return AvroCodec(settings.wire_format, resolver)


def _summarise(exc: ValidationError) -> str:
    parts = [f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors()[:5]]
    more = exc.error_count() - len(parts)
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")
