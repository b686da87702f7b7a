"""The schema-driven view of one UI state: what a language-model policy or critic reads.

The view is canonical JSON with a fixed key order, so that the same event and schema always give
byte-identical text (prompt caches and recorded decisions stay comparable). It is bounded by a
token budget, shedding the least useful content first, and it never carries personal data:
PII-flagged fields and arguments are masked, and so is any PII value quoted in free text (whole
values: :mod:`selective_autonomy.schemas.pii` says why, and holds the masking).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from selective_autonomy.schemas import pii
from selective_autonomy.schemas.event_parts import Scalar
from selective_autonomy.schemas.events import UIStateChanged
from selective_autonomy.schemas.process import ProcessSchema

ELLIPSIS = "…"

MIN_VALUE_CHARS = 16
"""Values are never shortened below this while fitting the budget; the skeleton cut handles the rest."""

BYTES_PER_TOKEN = 4


class ViewBudget(BaseModel):
    """How much of a UI state a view may show."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_tokens: int = Field(default=512, ge=1, description="Upper bound of estimate_tokens(text).")
    max_chat_turns: int = Field(default=6, ge=0, description="Newest chat turns kept.")
    max_recent_actions: int = Field(default=10, ge=0, description="Newest actions kept.")
    max_value_chars: int = Field(default=200, ge=1, description="Longest string value before it is cut.")


class RenderedView(BaseModel):
    """A rendered view: ``text`` is ``data`` as canonical JSON, unless ``truncated`` says it was cut."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    data: dict[str, Any]
    text: str
    token_estimate: int
    truncated: bool = False


def estimate_tokens(text: str) -> int:
    """A cheap, deterministic upper-ish bound of a tokenizer's count.

    UTF-8 bytes over four rather than characters over four: a Cyrillic or CJK character costs a
    tokenizer far more than an ASCII one, and counting bytes keeps non-English chats within budget.
    """
    return len(text.encode("utf-8")) // BYTES_PER_TOKEN + 1


def canonical_json(data: Any) -> str:
    """The view's text form: compact, keys in insertion order, non-ASCII kept as is."""
    return json.dumps(data, sort_keys=False, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _cut(text: str, max_chars: int) -> str:
    if len(text) <= max_chars:
        return text
    return text[: max_chars - 1] + ELLIPSIS


@dataclass
class _Content:
    """Everything the view may show, already masked and ordered; rendering only selects and cuts."""

    head: dict[str, Any]
    known_fields: list[tuple[str, Scalar]]
    unknown_fields: list[tuple[str, Scalar]]
    chat: list[tuple[str, str]]
    actions: list[tuple[str, list[tuple[str, Scalar]]]]
    controls: list[str]


@dataclass(frozen=True)
class _Selection:
    """How much of the content one rendering shows."""

    n_chat: int
    n_actions: int
    value_chars: int
    n_unknown: int


def _collect(event: UIStateChanged, schema: ProcessSchema, budget: ViewBudget) -> _Content:
    scrub = pii.pii_scrubber(pii.pii_values(event, schema))
    state = event.ui_state

    head: dict[str, Any] = {
        "process_id": scrub(event.process_id),
        "business_cluster": scrub(event.business_cluster),
        "step": event.state_version,
    }
    if state.case_started_at is not None:
        elapsed = (event.timestamp - state.case_started_at).total_seconds()
        head["elapsed_s"] = max(0, round(elapsed))

    known_fields: list[tuple[str, Scalar]] = []
    for field in schema.fields:
        if field.name not in state.fields:
            continue
        value = state.fields[field.name]
        known_fields.append(
            (field.name, pii.MASK if field.pii and value is not None else pii.masked_value(value, scrub))
        )
    known_names = {field.name for field in schema.fields}
    unknown_fields = [
        (scrub(name), pii.masked_value(state.fields[name], scrub))
        for name in sorted(state.fields)
        if name not in known_names
    ]

    turns = state.chat_tail[-budget.max_chat_turns :] if budget.max_chat_turns else []
    chat = [(turn.speaker.value, scrub(turn.text)) for turn in turns]

    actions: list[tuple[str, list[tuple[str, Scalar]]]] = []
    for action in state.recent_actions[-budget.max_recent_actions :] if budget.max_recent_actions else []:
        spec = schema.action(action.action_type)
        pii_args = {arg.name for arg in spec.arguments if arg.pii} if spec is not None else set()
        arguments = [
            (scrub(name), pii.MASK if name in pii_args and value is not None else pii.masked_value(value, scrub))
            for name, value in sorted(action.arguments.items())
        ]
        actions.append((scrub(action.action_type), arguments))

    return _Content(
        head=head,
        known_fields=known_fields,
        unknown_fields=unknown_fields,
        chat=chat,
        actions=actions,
        controls=[scrub(control) for control in state.controls],
    )


def _render(content: _Content, sel: _Selection) -> dict[str, Any]:
    def val(value: Scalar) -> Scalar:
        return _cut(value, sel.value_chars) if isinstance(value, str) else value

    fields = {name: val(value) for name, value in content.known_fields}
    for name, value in content.unknown_fields[: sel.n_unknown]:
        fields.setdefault(name, val(value))
    chat = content.chat[-sel.n_chat :] if sel.n_chat else []
    actions = content.actions[-sel.n_actions :] if sel.n_actions else []
    return {
        **content.head,
        "fields": fields,
        "chat": [{"speaker": speaker, "text": val(text)} for speaker, text in chat],
        "recent_actions": [
            {"action_type": action_type, "arguments": {name: val(value) for name, value in arguments}}
            for action_type, arguments in actions
        ],
        "controls": content.controls,
    }


def _selections(content: _Content, budget: ViewBudget) -> Iterator[_Selection]:
    """Ever smaller selections, the full one first, shedding the least useful content first."""
    sel = _Selection(
        n_chat=len(content.chat),
        n_actions=len(content.actions),
        value_chars=budget.max_value_chars,
        n_unknown=len(content.unknown_fields),
    )
    yield sel
    while sel.n_chat > 0:
        sel = replace(sel, n_chat=sel.n_chat - 1)
        yield sel
    while sel.n_actions > 0:
        sel = replace(sel, n_actions=sel.n_actions - 1)
        yield sel
    while sel.value_chars > MIN_VALUE_CHARS:
        sel = replace(sel, value_chars=max(MIN_VALUE_CHARS, sel.value_chars // 2))
        yield sel
    while sel.n_unknown > 0:
        sel = replace(sel, n_unknown=sel.n_unknown - 1)
        yield sel


def _cut_text(text: str, max_tokens: int) -> str:
    max_bytes = max_tokens * BYTES_PER_TOKEN - 1
    room = max_bytes - len(ELLIPSIS.encode("utf-8"))
    # Cutting bytes may split a character; dropping the partial one keeps the cut deterministic.
    return text.encode("utf-8")[: max(room, 0)].decode("utf-8", errors="ignore") + ELLIPSIS


DEFAULT_BUDGET = ViewBudget()


def render_view(event: UIStateChanged, schema: ProcessSchema, budget: ViewBudget = DEFAULT_BUDGET) -> RenderedView:
    """Render ``event`` as its schema-driven view, within ``budget`` (default :class:`ViewBudget`).

    Keys come in a fixed order: process_id, business_cluster, step, elapsed_s (when the case
    start is known), fields (schema order, then fields unknown to the schema by name), chat
    (oldest to newest), recent_actions (oldest to newest), controls. Over budget, the view sheds
    the oldest chat turns, then the oldest actions, then shortens long values, then drops unknown
    fields; if even that skeleton does not fit, the text is cut and ``truncated`` is set.
    """
    content = _collect(event, schema, budget)
    data: dict[str, Any] = {}
    text = ""
    for sel in _selections(content, budget):
        data = _render(content, sel)
        text = canonical_json(data)
        if estimate_tokens(text) <= budget.max_tokens:
            return RenderedView(data=data, text=text, token_estimate=estimate_tokens(text))
    text = _cut_text(text, budget.max_tokens)
    return RenderedView(data=data, text=text, token_estimate=estimate_tokens(text), truncated=True)
