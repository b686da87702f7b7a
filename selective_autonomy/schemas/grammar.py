"""The action grammar of a process: which ``Action`` values its schema allows.

Two views of one rule set. :func:`action_json_schema` is the JSON Schema handed to a constrained
decoder (vLLM structured output, xgrammar backend), so it sticks to plain keywords: no ``$ref``,
no ``patternProperties``, no conditionals. :func:`validate_action` applies the same rules in plain
Python, because it runs on every decision and must not pay for a generic JSON Schema validator;
a unit test keeps the two in agreement.

One deliberate difference: JSON Schema calls ``3.0`` an integer, :func:`validate_action` does not,
since a float would travel as an Avro ``double`` and reach the BPM executor as one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from selective_autonomy.schemas.event_parts import Action, Scalar
from selective_autonomy.schemas.process import ActionSpec, ArgumentSpec, ProcessSchema, ValueType

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

DEFAULT_MAX_TEXT_CHARS = 2000
"""Longest free-text argument (a chat message): bounds what a decoder may generate."""

_STRING_TYPES = frozenset({ValueType.string, ValueType.text, ValueType.enum, ValueType.datetime})

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.\d+)?(?:[Zz]|[+-](\d{2}):(\d{2}))",
    re.ASCII,
)
_DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def is_rfc3339_datetime(value: str) -> bool:
    """Whether ``value`` is an RFC 3339 date-time, the meaning of JSON Schema's ``date-time`` format."""
    match = _RFC3339.fullmatch(value)
    if match is None:
        return False
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    if not 1 <= month <= 12 or not 1 <= day <= _DAYS_IN_MONTH[month - 1]:
        return False
    if month == 2 and day == 29 and not (year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)):
        return False
    # 60 seconds is a leap second, which RFC 3339 allows.
    if hour > 23 or minute > 59 or second > 60:
        return False
    off_hour, off_minute = match.group(7), match.group(8)
    return off_hour is None or (int(off_hour) <= 23 and int(off_minute) <= 59)


def _enum_values(spec: ArgumentSpec) -> tuple[str, ...] | None:
    if spec.enum is None or spec.type not in _STRING_TYPES:
        return None
    return tuple(spec.enum)


def argument_json_schema(spec: ArgumentSpec, *, max_text_chars: int = DEFAULT_MAX_TEXT_CHARS) -> dict[str, Any]:
    """JSON Schema of one argument value."""
    out: dict[str, Any]
    match spec.type:
        case ValueType.integer:
            out = {"type": "integer"}
        case ValueType.number:
            out = {"type": "number"}
        case ValueType.boolean:
            out = {"type": "boolean"}
        case ValueType.datetime:
            out = {"type": "string", "format": "date-time"}
        case ValueType.text:
            out = {"type": "string", "maxLength": max_text_chars}
        case _:
            out = {"type": "string"}
    enum = _enum_values(spec)
    if enum is not None:
        out["enum"] = list(enum)
    return out


def _action_branch(spec: ActionSpec, max_text_chars: int) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "type": "object",
        "properties": {arg.name: argument_json_schema(arg, max_text_chars=max_text_chars) for arg in spec.arguments},
        "additionalProperties": False,
    }
    required = [arg.name for arg in spec.arguments if arg.required]
    if required:
        arguments["required"] = required
    return {
        "type": "object",
        "properties": {"action_type": {"const": spec.name}, "arguments": arguments},
        "required": ["action_type", "arguments"],
        "additionalProperties": False,
    }


def action_json_schema(schema: ProcessSchema, *, max_text_chars: int = DEFAULT_MAX_TEXT_CHARS) -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of one action of ``schema``: an ``anyOf`` with one branch per action.

    ``anyOf`` rather than ``oneOf``: the ``const`` on ``action_type`` already makes the branches
    disjoint, and ``anyOf`` is the form every constrained decoder compiles. A schema without any
    action gets ``not: {}``, which nothing satisfies, because an empty ``anyOf`` is not valid JSON Schema.

    :param max_text_chars: ``maxLength`` of ``text`` arguments; default ``DEFAULT_MAX_TEXT_CHARS``.
    """
    branches = [_action_branch(spec, max_text_chars) for spec in schema.actions]
    out: dict[str, Any] = {"$schema": JSON_SCHEMA_DIALECT, "title": f"{schema.process_id} action"}
    if branches:
        out["anyOf"] = branches
    else:
        out["not"] = {}
    return out


def _type_name(value: Scalar) -> str:
    return "null" if value is None else type(value).__name__


_LONG_MIN, _LONG_MAX = -(2**63), 2**63 - 1


def value_violation(value_type: ValueType, enum: Sequence[str] | None, value: Scalar) -> str | None:
    """Why ``value`` is not a value of ``value_type`` (one of ``enum`` where given), or ``None``.

    The one type check of screen fields (the webhook) and action arguments (the grammar): both travel
    in Avro unions of ``boolean``, ``long``, ``double`` and ``string``, so an integer must fit 64 bits.
    Callers decide about null and prefix the message with where the value stands.
    """
    match value_type:
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
    if enum is not None and value not in enum:
        return f"must be one of {list(enum)!r}, got {value!r}"
    if value_type is ValueType.datetime and not is_rfc3339_datetime(value):
        return f"must be an RFC 3339 date-time, got {value!r}"
    return None


def _argument_violation(action_type: str, spec: ArgumentSpec, value: Scalar, max_text_chars: int) -> str | None:
    where = f"argument {spec.name!r} of {action_type!r}"
    problem = value_violation(spec.type, _enum_values(spec), value)
    if problem is not None:
        return f"{where} {problem}"
    if spec.type is ValueType.text and isinstance(value, str) and len(value) > max_text_chars:
        return f"{where} is longer than {max_text_chars} characters ({len(value)})"
    return None


@dataclass(frozen=True, slots=True)
class _CompiledAction:
    spec: ActionSpec
    arguments: Mapping[str, ArgumentSpec]
    required: tuple[str, ...]


class ActionGrammar:
    """The grammar of one process schema, indexed once so that checking an action is a few dict lookups."""

    __slots__ = ("_actions", "max_text_chars", "schema")

    def __init__(self, schema: ProcessSchema, *, max_text_chars: int = DEFAULT_MAX_TEXT_CHARS) -> None:
        self.schema = schema
        self.max_text_chars = max_text_chars
        self._actions = {
            spec.name: _CompiledAction(
                spec=spec,
                arguments={arg.name: arg for arg in spec.arguments},
                required=tuple(arg.name for arg in spec.arguments if arg.required),
            )
            for spec in schema.actions
        }

    def json_schema(self) -> dict[str, Any]:
        return action_json_schema(self.schema, max_text_chars=self.max_text_chars)

    def validate(self, action: Action) -> list[str]:
        """Human-readable violations of ``action``; empty when the action is valid."""
        compiled = self._actions.get(action.action_type)
        if compiled is None:
            known = ", ".join(self._actions) or "none"
            return [f"unknown action_type {action.action_type!r} (known: {known})"]
        violations = [
            f"missing required argument {name!r} of {action.action_type!r}"
            for name in compiled.required
            if name not in action.arguments
        ]
        for name, value in action.arguments.items():
            spec = compiled.arguments.get(name)
            if spec is None:
                violations.append(f"unknown argument {name!r} of {action.action_type!r}")
                continue
            problem = _argument_violation(action.action_type, spec, value, self.max_text_chars)
            if problem is not None:
                violations.append(problem)
        return violations

    def is_valid(self, action: Action) -> bool:
        return not self.validate(action)


_GRAMMARS: dict[int, ActionGrammar] = {}
_GRAMMAR_CACHE_SIZE = 64


def grammar_for(schema: ProcessSchema) -> ActionGrammar:
    """The compiled grammar of ``schema``, cached by identity (schemas are frozen but not hashable)."""
    # An entry keeps its schema alive, so no other object can share that id while it is cached.
    grammar = _GRAMMARS.get(id(schema))
    if grammar is not None:
        return grammar
    if len(_GRAMMARS) >= _GRAMMAR_CACHE_SIZE:
        _GRAMMARS.pop(next(iter(_GRAMMARS)))
    grammar = ActionGrammar(schema)
    _GRAMMARS[id(schema)] = grammar
    return grammar


def validate_action(schema: ProcessSchema, action: Action) -> list[str]:
    """Human-readable violations of ``action`` against ``schema``; empty when the action is valid.

    Reports an unknown ``action_type``, missing required and unknown arguments, wrong types
    (``bool`` is not an integer or a number, ``3.0`` is not an integer), values outside an enum,
    over-long text and malformed date-times.
    """
    return grammar_for(schema).validate(action)


def is_valid_action(schema: ProcessSchema, action: Action) -> bool:
    return not validate_action(schema, action)
