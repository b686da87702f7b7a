"""Is a webhook body a valid ``UIStateChanged`` for a known process? Pure functions over a :class:`SchemaSource`.

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
from collections.abc import Sequence
from typing import Any, Protocol

from pydantic import ValidationError

from selective_autonomy.schemas.event_parts import Scalar
from selective_autonomy.schemas.events import UIStateChanged
from selective_autonomy.schemas.grammar import validate_action, value_violation
from selective_autonomy.schemas.process import ProcessSchema, UIField
from selective_autonomy.webapi.errors import Violation

MAX_LISTED = 20
"""Known names listed in one message at most."""


class SchemaSource(Protocol):
    """Process schemas by id."""

    def schema(self, process_id: str) -> ProcessSchema | None: ...

    def processes(self) -> list[str]: ...


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


def field_violation(spec: UIField, value: Scalar) -> str | None:
    """Why ``value`` does not fit the field ``spec`` (null always fits; required is checked apart)."""
    if value is None:
        return None
    return value_violation(spec.type, spec.enum, value)


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
