"""Argument templates of the embedded policy, and the history tokens it reads.

A template keeps each argument of an action either as a constant or as "copy the value of field X
from the screen", so a service call is proposed with the values the user gave, not the values of
some earlier case.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from selective_autonomy.schemas.event_parts import Action, Scalar
from selective_autonomy.schemas.process import ProcessSchema, ValueType


def _same_scalar(a: Scalar, b: Scalar) -> bool:
    """Equal value and type: ``1`` is not ``True`` nor ``1.0`` (the grammar tells them apart too)."""
    return a is not None and type(a) is type(b) and a == b


def _copyable(value: Scalar) -> bool:
    # Booleans and empty strings match far too many fields by coincidence to be worth copying.
    return isinstance(value, str | int | float) and not isinstance(value, bool) and value != ""


@dataclass(frozen=True, slots=True)
class ActionTemplate:
    """An action with each argument either a constant or a reference to a field of the screen."""

    action_type: str
    constants: tuple[tuple[str, Scalar], ...] = ()
    copies: tuple[tuple[str, str], ...] = ()
    """(argument, field) pairs: the argument takes the field's current value."""

    @classmethod
    def of(cls, action: Action, fields: Mapping[str, Scalar]) -> ActionTemplate:
        """The template of an action taken on a screen: arguments equal to a field's value become copies.

        A field named like the argument wins; otherwise the first matching field by name, so the
        same (action, screen) always gives the same template.
        """
        constants: list[tuple[str, Scalar]] = []
        copies: list[tuple[str, str]] = []
        for name, value in sorted(action.arguments.items()):
            source: str | None = None
            if _copyable(value):
                if _same_scalar(fields.get(name), value):
                    source = name
                else:
                    source = next((f for f in sorted(fields) if _same_scalar(fields[f], value)), None)
            if source is None:
                constants.append((name, value))
            else:
                copies.append((name, source))
        return cls(action.action_type, tuple(constants), tuple(copies))

    def fill(self, fields: Mapping[str, Scalar]) -> Action | None:
        """The action this template means on a screen; ``None`` when a copied field is empty there."""
        arguments = dict(self.constants)
        for name, source in self.copies:
            value = fields.get(source)
            if value is None or value == "":
                return None
            arguments[name] = value
        return Action(action_type=self.action_type, arguments=arguments)

    def to_json(self) -> dict[str, Any]:
        return {
            "action_type": self.action_type,
            "constants": [[name, value] for name, value in self.constants],
            "copies": [[name, source] for name, source in self.copies],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ActionTemplate:
        return cls(
            str(data["action_type"]),
            tuple((str(n), v) for n, v in data["constants"]),
            tuple((str(n), str(s)) for n, s in data["copies"]),
        )


def frequent(counter: Counter[Any], limit: int, min_count: int) -> list[Any]:
    """Keys by decreasing count (ties by their text, so the order is reproducible), at most ``limit``."""
    ranked = sorted(counter.items(), key=lambda kv: (-kv[1], repr(kv[0])))
    return [key for key, count in ranked if count >= min_count][:limit]


def select_templates(
    schema: ProcessSchema, targets: Sequence[tuple[Action, Mapping[str, Scalar]]], limit: int, min_count: int
) -> list[ActionTemplate]:
    """The templates kept as classes: frequent ones, plus the most frequent one of every seen type.

    The per-type guarantee means every action type seen in training can be proposed at all. A
    template holding a PII argument as a constant is never kept: personal data may be copied from
    the screen in front of the policy, never memorised from another customer's case.
    """
    pii = {spec.name: {a.name for a in spec.arguments if a.pii} for spec in schema.actions}
    templates = (ActionTemplate.of(action, fields) for action, fields in targets)
    counts: Counter[ActionTemplate] = Counter(
        t for t in templates if not any(name in pii.get(t.action_type, ()) for name, _ in t.constants)
    )
    kept = frequent(counts, limit, min_count)
    have = {t.action_type for t in kept}
    for template in frequent(counts, len(counts), 1):
        if template.action_type not in have:
            kept.append(template)
            have.add(template.action_type)
    return sorted(kept, key=lambda t: json.dumps(t.to_json(), sort_keys=True))


def discrete_arguments(schema: ProcessSchema) -> dict[str, frozenset[str]]:
    """Per action type, the non-PII arguments whose values form a small closed set (enum, boolean)."""
    return {
        spec.name: frozenset(a.name for a in spec.arguments if (a.enum or a.type is ValueType.boolean) and not a.pii)
        for spec in schema.actions
    }


def history_key(action: Action, discrete: Mapping[str, frozenset[str]]) -> str:
    """The history token of an action: its type and discrete arguments, free values reduced to ``*``.

    ``CONFIRM(slot=date, value="March 3rd")`` becomes ``CONFIRM|slot='date',value=*``: frequent
    enough to be learned, yet it still tells which slot was already confirmed in this turn.
    """
    if not action.arguments:
        return action.action_type  # the common case, and the cheapest
    kept = discrete.get(action.action_type, frozenset())
    parts = [f"{name}={value!r}" if name in kept else f"{name}=*" for name, value in sorted(action.arguments.items())]
    return f"{action.action_type}|{','.join(parts)}"
