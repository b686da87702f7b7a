"""PII masking, in one place: which values of a state are personal data, and how each reader hides them.

A value is PII when the process schema flags its field, or the argument of a recent action that
carries it. Two readers, two grains, on purpose:

- **Text a person or a language model reads** (the text view, the console's cards and audits):
  :func:`pii_scrubber` replaces each PII value with :data:`MASK` wherever it is quoted *whole*, and
  :func:`masked_value` hides a field or argument value that quotes one entirely (numbers included).
  Whole values keep the rest of the text readable: masking every word of an address would also hide
  every "street" and "1" of the chat. Values shorter than :data:`MIN_PII_MATCH_CHARS` are not searched.
- **Features** (the encoder's chat tokens): :func:`pii_words` gives every word of a PII value, and
  each such word becomes one ``<pii>`` token, case-insensitively. Tokens are words, so a value can
  only be matched word by word, and a partial mention (a surname alone) must not become a feature
  that a policy learns; masking a common word costs a little signal, no privacy.

Both words and tokens are :data:`WORD` matches of the lower-cased text, so what is masked is
exactly what the encoder would have tokenized.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from functools import lru_cache

from selective_autonomy.schemas.event_parts import Scalar
from selective_autonomy.schemas.events import UIStateChanged
from selective_autonomy.schemas.process import ProcessSchema

MASK = "[masked]"

MIN_PII_MATCH_CHARS = 3
"""Shorter PII values are not searched for in free text: they identify no one, and masking every
occurrence of, say, ``"12"`` would shred the text."""

WORD = re.compile(r"\w+")
"""A word of chat text: the encoder's token and the grain of :func:`pii_words`."""


def pii_sources(event: UIStateChanged, schema: ProcessSchema) -> list[Scalar]:
    """The raw values of ``event`` that are PII: flagged fields, and flagged arguments of its recent actions."""
    fields = event.ui_state.fields
    values: list[Scalar] = [fields.get(name) for name in schema.pii_fields]
    for action in event.ui_state.recent_actions:
        spec = schema.action(action.action_type)
        if spec is not None:
            values += [action.arguments.get(arg.name) for arg in spec.arguments if arg.pii]
    return values


def quoted_values(values: Iterable[Scalar]) -> list[str]:
    """The values worth searching for in free text, as text, longest first (so that a full name is
    masked before a first name that is part of it)."""
    found = {
        text
        for value in values
        if value is not None and not isinstance(value, bool)
        for text in [value if isinstance(value, str) else str(value)]
        if len(text) >= MIN_PII_MATCH_CHARS
    }
    return sorted(found, key=lambda v: (-len(v), v))


def pii_values(event: UIStateChanged, schema: ProcessSchema) -> list[str]:
    """The PII strings of ``event`` worth searching for in free text, longest first."""
    return quoted_values(pii_sources(event, schema))


def pii_scrubber(values: Iterable[str]) -> Callable[[str], str]:
    """A function that replaces every whole occurrence of ``values`` in a string with :data:`MASK`."""
    ordered = sorted(set(values), key=lambda v: (-len(v), v))
    if not ordered:
        return _identity
    pattern = re.compile("|".join(re.escape(v) for v in ordered))

    def scrub(text: str) -> str:
        # A replacement can complete a new occurrence next to the mask (values containing "]" and
        # the like); a few passes settle that, and a string that still holds a value goes entirely.
        for _ in range(3):
            if pattern.search(text) is None:
                return text
            text = pattern.sub(MASK, text)
        return MASK if pattern.search(text) is not None else text

    return scrub


def _identity(text: str) -> str:
    return text


def masked_value(value: Scalar, scrub: Callable[[str], str]) -> Scalar:
    """A field or argument value as text readers see it: masked wherever it quotes a PII value, numbers
    included (a number that quotes one is masked whole, since it cannot be partly shown)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return scrub(value)
    text = str(value)  # what json.dumps writes for an int or a finite float
    if not math.isfinite(value):
        return scrub(text)  # "nan", "inf": JSON has no literal for them
    return value if scrub(text) == text else MASK


@lru_cache(maxsize=8192)
def _value_words(text: str) -> frozenset[str]:
    # Memoised: a session repeats its values at every step.
    return frozenset(WORD.findall(text.lower()))


def pii_words(values: Iterable[Scalar]) -> frozenset[str]:
    """Every lower-cased word of the PII ``values``: the chat tokens the encoder masks."""
    words: set[str] = set()
    for value in values:
        if value is not None and not isinstance(value, bool):
            words.update(_value_words(str(value)))
    return frozenset(words)
