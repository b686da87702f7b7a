"""Request templates: how an ``ActionExecuted`` becomes a URL, headers and a JSON body.

A placeholder is ``{name}`` where name is one of :data:`ROOTS` or ``arguments.<argument>``; ``{{``
and ``}}`` are literal braces. A trailing ``?`` (``{arguments.note?}``) makes a missing argument
render as null (or empty text) instead of failing the action.

- In a URL each placeholder value is percent-encoded (``/`` included), so an argument can never
  change the path: ``/sessions/{session_id}/orders/{arguments.order_id}``.
- In a header the value is inserted as text; a value with a line break fails the action.
- In a JSON body a string that is exactly one placeholder becomes the value itself with its type
  (``"{arguments.amount}"`` -> ``12.5``, ``"{arguments}"`` -> the arguments object); placeholders
  inside longer strings are inserted as text. Object keys are literal.

Templates are compiled when the executor starts, so a typo (an unknown name, an unclosed brace)
stops it there rather than failing actions one by one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from pydantic import JsonValue

from selective_autonomy.edges.errors import TemplateError
from selective_autonomy.schemas.events import ActionExecuted

ROOTS: frozenset[str] = frozenset(
    {
        "action_id",
        "event_id",
        "session_id",
        "process_id",
        "business_cluster",
        "state_version",
        "action_type",
        "tier",
        "executed_by",
        "operator_id",
        "decided_at",
        "arguments",
    }
)
"""Names a template may use: the action's session fields, its type, and its arguments."""

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_\-]+)?\??")


@dataclass(frozen=True)
class Placeholder:
    root: str
    argument: str | None
    optional: bool
    source: str


Part = str | Placeholder


def _placeholder(body: str, text: str) -> Placeholder:
    if not _NAME.fullmatch(body):
        raise TemplateError(f"bad placeholder {{{body}}} in {text!r}")
    optional = body.endswith("?")
    name = body.rstrip("?")
    root, _, argument = name.partition(".")
    if root not in ROOTS:
        raise TemplateError(f"unknown name {root!r} in {text!r} (known: {', '.join(sorted(ROOTS))})")
    if argument and root != "arguments":
        raise TemplateError(f"only arguments have parts: {{{body}}} in {text!r}")
    return Placeholder(root=root, argument=argument or None, optional=optional, source=body)


def parse(text: str) -> tuple[Part, ...]:
    """The literal runs and placeholders of ``text``; raises :class:`TemplateError` when malformed."""
    parts: list[Part] = []
    literal: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "{" and text.startswith("{{", i):
            literal.append("{")
            i += 2
        elif char == "}" and text.startswith("}}", i):
            literal.append("}")
            i += 2
        elif char == "{":
            end = text.find("}", i + 1)
            if end < 0:
                raise TemplateError(f"unclosed '{{' in {text!r}")
            if literal:
                parts.append("".join(literal))
                literal = []
            parts.append(_placeholder(text[i + 1 : end], text))
            i = end + 1
        elif char == "}":
            raise TemplateError(f"unmatched '}}' in {text!r} (write '}}}}' for a literal brace)")
        else:
            literal.append(char)
            i += 1
    if literal:
        parts.append("".join(literal))
    return tuple(parts)


def action_context(action: ActionExecuted) -> dict[str, Any]:
    """What placeholders resolve to for ``action``."""
    return {
        "action_id": action.action_id,
        "event_id": action.event_id,
        "session_id": action.session_id,
        "process_id": action.process_id,
        "business_cluster": action.business_cluster,
        "state_version": action.state_version,
        "action_type": action.action.action_type,
        "tier": action.tier.value,
        "executed_by": action.executed_by.value,
        "operator_id": action.operator_id,
        "decided_at": action.decided_at.isoformat(),
        "arguments": dict(action.action.arguments),
    }


def _lookup(placeholder: Placeholder, context: Mapping[str, Any]) -> Any:
    value = context.get(placeholder.root)
    if placeholder.argument is None:
        return value
    arguments = value if isinstance(value, Mapping) else {}
    if placeholder.argument in arguments:
        return arguments[placeholder.argument]
    if placeholder.optional:
        return None
    raise TemplateError(f"the action has no argument {placeholder.argument!r} (template {{{placeholder.source}}})")


def as_text(value: Any) -> str:
    """A value as it appears inside text: JSON spelling for booleans, null and objects."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return json.dumps(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


class TextTemplate:
    """A template rendered to text; ``encode`` is applied to each placeholder's text (not to literals)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.parts = parse(text)

    def render(self, context: Mapping[str, Any], encode: Callable[[str], str] | None = None) -> str:
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
            else:
                text = as_text(_lookup(part, context))
                out.append(encode(text) if encode is not None else text)
        return "".join(out)

    @property
    def single(self) -> Placeholder | None:
        """The placeholder when the template is exactly one, else None."""
        if len(self.parts) == 1 and isinstance(self.parts[0], Placeholder):
            return self.parts[0]
        return None


def _quote_all(text: str) -> str:
    return quote(text, safe="")


class UrlTemplate(TextTemplate):
    def render_url(self, context: Mapping[str, Any]) -> str:
        return self.render(context, _quote_all)


class HeaderTemplate(TextTemplate):
    def render_header(self, context: Mapping[str, Any]) -> str:
        value = self.render(context)
        if "\r" in value or "\n" in value:
            raise TemplateError(f"header template {self.text!r} rendered a line break")
        return value


def _compile_json(value: JsonValue) -> Any:
    if isinstance(value, str):
        return TextTemplate(value)
    if isinstance(value, list):
        return [_compile_json(item) for item in value]
    if isinstance(value, dict):
        return {key: _compile_json(item) for key, item in value.items()}
    return value


def _render_json(compiled: Any, context: Mapping[str, Any]) -> Any:
    if isinstance(compiled, TextTemplate):
        single = compiled.single
        return _lookup(single, context) if single is not None else compiled.render(context)
    if isinstance(compiled, list):
        return [_render_json(item, context) for item in compiled]
    if isinstance(compiled, dict):
        return {key: _render_json(item, context) for key, item in compiled.items()}
    return compiled


class JsonTemplate:
    """A JSON document whose strings are templates (see the module docstring)."""

    def __init__(self, document: JsonValue) -> None:
        self.document = document
        self._compiled = _compile_json(document)

    def render(self, context: Mapping[str, Any]) -> Any:
        return _render_json(self._compiled, context)
