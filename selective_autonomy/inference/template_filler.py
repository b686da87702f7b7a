"""From an embedded policy's ranked argument templates to its candidates: filled, checked, merged.

Split from ``embedded_policy`` because it is the part of proposing that needs no network: given
templates ranked by ``P(type) * P(template | type)``, fill each from the event's fields, drop
what the grammar rejects (:func:`is_valid_action`), merge templates that fill to the same action
and keep the ``top_k`` best. Filled actions are memoised, since screens repeat their values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from selective_autonomy.inference.action_templates import ActionTemplate
from selective_autonomy.inference.protocol import Candidate
from selective_autonomy.schemas.event_parts import Action, Scalar
from selective_autonomy.schemas.grammar import is_valid_action
from selective_autonomy.schemas.process import ProcessSchema

FILL_CACHE_SIZE = 65_536


@dataclass(frozen=True, slots=True)
class _Filled:
    action: Action
    key: str
    """``action.canonical_json()``, computed once."""


class TemplateFiller:
    """Fills one policy's templates (by index) on a screen and ranks the valid actions they give."""

    def __init__(self, schema: ProcessSchema, templates: Sequence[ActionTemplate]) -> None:
        self.schema = schema
        self.templates = templates
        # Filled, checked actions by (template, copied values): screens repeat their values from step
        # to step and across sessions, so building and validating each action once saves most of
        # the time of proposing.
        self._filled_cache: dict[tuple[int, tuple[tuple[type, Scalar], ...]], _Filled | None] = {}
        self._static = {i: self._filled(i, {}) for i, template in enumerate(self.templates) if not template.copies}

    def _filled(self, index: int, fields: Mapping[str, Scalar]) -> _Filled | None:
        """The template's action on this screen with its canonical key; ``None`` if unfillable or invalid."""
        template = self.templates[index]
        # The type is part of the key: True == 1 in Python, but not in the grammar.
        values = tuple((type(v), v) for v in (fields.get(source) for _, source in template.copies))
        key = (index, values)
        if key in self._filled_cache:
            return self._filled_cache[key]
        action = template.fill(fields)
        filled = None
        if action is not None and is_valid_action(self.schema, action):
            filled = _Filled(action, action.canonical_json())
        if len(self._filled_cache) >= FILL_CACHE_SIZE:
            self._filled_cache.clear()
        self._filled_cache[key] = filled
        return filled

    def candidates(
        self, indices: list[int], probabilities: list[float], fields: Mapping[str, Scalar], top_k: int
    ) -> list[Candidate]:
        """Fill the best templates, merge those that give the same action, and rank what is valid.

        :param indices: template indices, best first; :param probabilities: theirs, in that order.
        """
        merged: dict[str, tuple[Action, float]] = {}
        for index, probability in zip(indices, probabilities, strict=True):
            if probability <= 0.0:
                break
            filled = self._static[index] if index in self._static else self._filled(index, fields)
            if filled is None:
                continue
            seen = merged.get(filled.key)
            merged[filled.key] = (filled.action, probability + (seen[1] if seen else 0.0))
        ranked = sorted(merged.items(), key=lambda kv: (-kv[1][1], kv[0]))[:top_k]
        return [Candidate(action=action, probability=min(1.0, p)) for _, (action, p) in ranked]
