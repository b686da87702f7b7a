"""Is a webhook body a valid ``UIStateChanged`` for a known process? Pure functions, no I/O but the schema files.

Two layers, both reported as :class:`~selective_autonomy.edges.ingest.protocol.Violation` lists:

1. the contract: the JSON must be an object the pydantic mirror of ``UIStateChanged`` accepts
   (unknown keys, missing ids, naive timestamps and wrong types are refused);
2. the process schema: the process and business cluster must be known, every key of
   ``ui_state.fields`` must be a field of the schema with a value of its type (``bool`` is not an
   integer, ``3.0`` is not an integer, an enum value must be listed, a datetime is RFC 3339, a
   required field may not be missing or null), every control must be one of the schema's actions,
   and ``last_action`` and ``recent_actions`` must satisfy the action grammar.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from pydantic import ValidationError

from selective_autonomy.schemas.event_parts import Scalar
from selective_autonomy.schemas.events import UIStateChanged
from selective_autonomy.schemas.grammar import is_rfc3339_datetime, validate_action
from selective_autonomy.schemas.identifiers import InvalidIdentifier, is_process_id, process_dir_name
from selective_autonomy.schemas.process import ProcessSchema, UIField, ValueType
from selective_autonomy.webapi.errors import Violation

log = logging.getLogger(__name__)

MAX_LISTED = 20
"""Known names listed in one message at most."""

_LONG_MIN, _LONG_MAX = -(2**63), 2**63 - 1

SCHEMA_FILE = "schema.yaml"
"""``<models_dir>/<process_id>/schema.yaml``: the layout of ``inference.registry``, read here without
importing the model code (the webhook has no use for torch)."""


class SchemaSource(Protocol):
    """Process schemas by id."""

    def schema(self, process_id: str) -> ProcessSchema | None: ...

    def processes(self) -> list[str]: ...


class SchemaDirectory:
    """Schemas from the models directory (``<models_dir>/<process_id>/schema.yaml``), reloaded when a file changes.

    :param models_dir: ``Settings.models_dir``.
    :param extra: schemas given directly, used when the directory has none for a process.
    """

    def __init__(self, models_dir: Path, extra: Sequence[ProcessSchema] = ()) -> None:
        self.models_dir = models_dir
        self.extra = {schema.process_id: schema for schema in extra}
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[tuple[int, int], ProcessSchema]] = {}

    def schema(self, process_id: str) -> ProcessSchema | None:
        # The contract already refused such an id; this keeps any other caller off the disk too.
        try:
            path = self.models_dir / process_dir_name(process_id) / SCHEMA_FILE
        except InvalidIdentifier:
            return None
        try:
            stat = path.stat()
        except OSError:
            return self.extra.get(process_id)
        signature = (stat.st_mtime_ns, stat.st_size)
        with self._lock:
            cached = self._cache.get(process_id)
        if cached is not None and cached[0] == signature:
            return cached[1]
        try:
            schema = ProcessSchema.load(path)
        except (OSError, ValueError, ValidationError) as exc:
            log.warning("invalid process schema %s: %s", path, exc)
            return self.extra.get(process_id)
        with self._lock:
            self._cache[process_id] = (signature, schema)
        return schema

    def processes(self) -> list[str]:
        on_disk: set[str] = set()
        if self.models_dir.is_dir():
            on_disk = {
                p.name for p in self.models_dir.iterdir() if is_process_id(p.name) and (p / SCHEMA_FILE).is_file()
            }
        return sorted(on_disk | set(self.extra))


def _listed(names: Sequence[str]) -> str:
    shown = ", ".join(names[:MAX_LISTED])
    return shown + (f", ... ({len(names)} in all)" if len(names) > MAX_LISTED else "") if names else "none"


def contract_violations(exc: ValidationError, prefix: str = "") -> list[Violation]:
    """Pydantic's errors as violations with dotted locations."""
    out = []
    for error in exc.errors():
        loc = ".".join(str(part) for part in error.get("loc", ()))
        out.append(Violation(loc=(prefix + loc) if loc else (prefix.rstrip(".") or "body"), msg=error.get("msg", "")))
    return out


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(raw: bytes) -> Any:
    """The JSON document in ``raw`` (UTF-8); raises ``ValueError`` for anything else (NaN and Infinity included)."""
    return json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)


def parse_event(document: Any, prefix: str = "") -> UIStateChanged | list[Violation]:
    """The contract event in a parsed JSON document, or why it is not one."""
    if not isinstance(document, dict):
        return [Violation(loc=prefix.rstrip(".") or "body", msg="must be a JSON object (one UIStateChanged)")]
    try:
        return UIStateChanged.model_validate(document)
    except ValidationError as exc:
        return contract_violations(exc, prefix)


def _type_name(value: Scalar) -> str:
    return "null" if value is None else type(value).__name__


def field_violation(spec: UIField, value: Scalar) -> str | None:
    """Why ``value`` does not fit the field ``spec`` (null always fits; required is checked apart)."""
    if value is None:
        return None
    match spec.type:
        case ValueType.integer:
            if not isinstance(value, int) or isinstance(value, bool):
                return f"must be an integer, got {_type_name(value)}"
            if not _LONG_MIN <= value <= _LONG_MAX:
                return "must fit in 64 bits (an Avro long)"
            return None
        case ValueType.number:
            if not isinstance(value, int | float) or isinstance(value, bool):
                return f"must be a number, got {_type_name(value)}"
            return None
        case ValueType.boolean:
            if not isinstance(value, bool):
                return f"must be a boolean, got {_type_name(value)}"
            return None
    if not isinstance(value, str):
        return f"must be a string, got {_type_name(value)}"
    if spec.enum is not None and value not in spec.enum:
        return f"must be one of {spec.enum!r}, got {value!r}"
    if spec.type is ValueType.datetime and not is_rfc3339_datetime(value):
        return f"must be an RFC 3339 date-time, got {value!r}"
    return None


def schema_violations(event: UIStateChanged, schemas: SchemaSource, prefix: str = "") -> list[Violation]:
    """Everything in ``event`` its process schema does not allow; empty when it is valid."""
    schema = schemas.schema(event.process_id)
    if schema is None:
        known = _listed(schemas.processes())
        return [Violation(loc=prefix + "process_id", msg=f"unknown process {event.process_id!r} (known: {known})")]
    out: list[Violation] = []
    if schema.cluster(event.business_cluster) is None:
        known = _listed([c.id for c in schema.business_clusters])
        out.append(
            Violation(
                loc=prefix + "business_cluster",
                msg=f"unknown business cluster {event.business_cluster!r} of {schema.process_id!r} (known: {known})",
            )
        )
    state = event.ui_state
    for name, value in state.fields.items():
        spec = schema.field(name)
        loc = f"{prefix}ui_state.fields.{name}"
        if spec is None:
            known = _listed([f.name for f in schema.fields])
            out.append(Violation(loc=loc, msg=f"unknown field {name!r} of {schema.process_id!r} (known: {known})"))
            continue
        problem = field_violation(spec, value)
        if problem is not None:
            out.append(Violation(loc=loc, msg=problem))
    for spec in schema.fields:
        if spec.required and state.fields.get(spec.name) is None:
            out.append(Violation(loc=f"{prefix}ui_state.fields.{spec.name}", msg="required field is missing or null"))
    actions = set(schema.action_names)
    for i, control in enumerate(state.controls):
        if control not in actions:
            out.append(
                Violation(
                    loc=f"{prefix}ui_state.controls.{i}",
                    msg=f"unknown control {control!r} (known: {_listed(schema.action_names)})",
                )
            )
    for i, action in enumerate(state.recent_actions):
        out += [Violation(loc=f"{prefix}ui_state.recent_actions.{i}", msg=m) for m in validate_action(schema, action)]
    if event.last_action is not None:
        out += [Violation(loc=f"{prefix}last_action", msg=m) for m in validate_action(schema, event.last_action)]
    return out


def validate_event(document: Any, schemas: SchemaSource, prefix: str = "") -> UIStateChanged | list[Violation]:
    """Both layers: the event, or every violation found (contract first; the schema only once the contract holds)."""
    parsed = parse_event(document, prefix)
    if isinstance(parsed, list):
        return parsed
    violations = schema_violations(parsed, schemas, prefix)
    return violations or parsed
