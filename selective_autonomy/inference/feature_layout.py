"""Layout of the model inputs the embedded policy and critic read: index conventions and columns.

Split from the encoder (``feature_encoder``) because this is what a model's input layers are
built against, while the encoder is how one process's events are turned into it. Numpy only, so
that serving code can use it without importing torch.

Index conventions: ``0`` is padding or a missing value everywhere. Action ``i`` of
``schema.actions`` has index ``i + 1`` and an action the schema does not know has the last index.
Categorical columns reserve ``1`` for values outside the learned vocabulary. Sequences (action
history, chat tokens) are padded on the left, so the newest element is always in the last column.

PII-flagged fields are never columns (``categorical_fields``, ``numeric_fields``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from selective_autonomy.schemas.event_parts import Actor, Scalar, Speaker
from selective_autonomy.schemas.process import ProcessSchema, UIField, ValueType

PAD = 0
MISSING = 0
OOV = 1

_CATEGORICAL_TYPES = frozenset({ValueType.enum, ValueType.string, ValueType.boolean})
_NUMERIC_TYPES = frozenset({ValueType.integer, ValueType.number})

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float32]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class EncodedBatch:
    """Model inputs for a batch of UI states; row ``b`` of every array belongs to event ``b``."""

    history: IntArray
    """int64 [B, max_history]: action indices of the most recent actions, newest last, 0 = padding."""
    categorical: IntArray
    """int64 [B, n_categorical]: per column 0 = missing, 1 = out of vocabulary, 2.. = vocabulary."""
    numeric: FloatArray
    """float32 [B, n_numeric]: see ``FeatureEncoder.numeric_names``."""
    chat_tokens: IntArray
    """int64 [B, max_chat_tokens]: hashed words of the chat tail, newest last, 0 = padding."""

    def __len__(self) -> int:
        return int(self.history.shape[0])


def action_index_size(schema: ProcessSchema) -> int:
    """Size of the action index space: padding, the schema's actions, unknown."""
    return len(schema.actions) + 2


def valid_action_mask(schema: ProcessSchema) -> BoolArray:
    """True at the indices a policy may propose: the schema's actions, not padding nor unknown."""
    mask = np.zeros(action_index_size(schema), dtype=np.bool_)
    mask[1 : len(schema.actions) + 1] = True
    return mask


def value_key(value: Scalar) -> str | None:
    """The vocabulary key of a field value; ``None`` and ``""`` both mean the field is empty."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else repr(value)


def as_number(value: Scalar) -> float | None:
    """A field value as a finite number; ``None`` when it is empty, boolean or not a number."""
    if value is None or isinstance(value, bool):
        return None
    try:
        # float() of a string too: screen scrapers often deliver numbers as text.
        number = float(value)
    except (ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def categorical_fields(schema: ProcessSchema) -> list[UIField]:
    """The fields that become ``field:<name>`` categorical columns, in schema order."""
    return [f for f in schema.fields if not f.pii and f.type in _CATEGORICAL_TYPES]


def numeric_fields(schema: ProcessSchema) -> list[UIField]:
    """The fields that become numeric columns (value and missing flag), in schema order."""
    return [f for f in schema.fields if not f.pii and f.type in _NUMERIC_TYPES]


def fixed_vocabularies(schema: ProcessSchema) -> dict[str, list[str]]:
    """Columns whose vocabulary the schema or the contract already defines, so nothing is learned."""
    return {
        "business_cluster": [c.id for c in schema.business_clusters],
        "actor": [a.value for a in Actor],
        "last_speaker": [s.value for s in Speaker],
    }


# The numeric columns after the per-field ones, in the order the encoder computes them.
NUMERIC_TAIL = (
    "step_log1p",
    "elapsed_log1p",
    "elapsed_missing",
    "hour_sin",
    "hour_cos",
    "dow_sin",
    "dow_cos",
    "chat_turns_log1p",
    "since_last_turn_log1p",
    "since_last_turn_missing",
)
