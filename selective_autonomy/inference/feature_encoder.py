"""Numeric encoding of UI states for the embedded torch policy and critic.

A :class:`FeatureEncoder` is fit once per process schema on training events and saved next to the
model (``to_json``), because the vocabularies and scaling it learns are part of the model: an index
means nothing without the encoder that produced it. It depends on numpy only, so that serving code
can encode without importing torch. The layout it produces (index conventions, columns,
:class:`EncodedBatch`) is defined in ``feature_layout``.

PII-flagged fields are never features, and in the chat tokens every word of a PII value (of a
field or of a PII-flagged argument of a recent action) is replaced by a ``<pii>`` token.
"""

from __future__ import annotations

import json
import math
import zlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC
from typing import Any

import numpy as np

from selective_autonomy.errors import SelautoError
from selective_autonomy.inference.feature_layout import (
    MISSING,
    NUMERIC_TAIL,
    OOV,
    PAD,
    BoolArray,
    EncodedBatch,
    as_number,
    categorical_fields,
    fixed_vocabularies,
    numeric_fields,
    value_key,
)
from selective_autonomy.schemas import pii
from selective_autonomy.schemas.event_parts import Scalar, Speaker
from selective_autonomy.schemas.events import UIStateChanged
from selective_autonomy.schemas.process import ProcessSchema

ENCODER_FORMAT = 1

DEFAULT_MAX_HISTORY = 8
DEFAULT_MAX_CHAT_TOKENS = 64
DEFAULT_CHAT_BUCKETS = 4096
DEFAULT_MAX_VOCAB = 50

Z_CLIP = 10.0
"""Standardised values are clipped: one absurd amount must not dominate a batch."""

_WORD = pii.WORD  # the masked words must be the tokens
_PII_TOKEN = "\x00pii"
_TEXT_CACHE_SIZE = 8192


class FeatureEncoderError(SelautoError):
    """An encoder does not fit the schema it is used with, or its saved form is unreadable."""


class FeatureEncoder:
    """Turns ``UIStateChanged`` events of one process into fixed-size arrays.

    Categorical columns: ``field:<name>`` for every non-PII enum, string and boolean field
    (vocabulary learned in :meth:`fit`), then ``business_cluster`` (the schema's clusters),
    ``actor`` (who caused this state) and ``last_speaker`` (of the chat tail), whose vocabularies
    the schema and the contract define. Numeric columns: see :attr:`numeric_names`.

    Build it with :meth:`fit` or :meth:`from_json`; the constructor takes already learned state.
    """

    def __init__(
        self,
        schema: ProcessSchema,
        *,
        vocabularies: Mapping[str, Sequence[str]],
        numeric_stats: Mapping[str, tuple[float, float]],
        max_history: int = DEFAULT_MAX_HISTORY,
        max_chat_tokens: int = DEFAULT_MAX_CHAT_TOKENS,
        chat_buckets: int = DEFAULT_CHAT_BUCKETS,
        max_vocab: int = DEFAULT_MAX_VOCAB,
    ) -> None:
        if max_history < 1 or max_chat_tokens < 1 or chat_buckets < 2 or max_vocab < 0:
            raise FeatureEncoderError(
                "need max_history >= 1, max_chat_tokens >= 1, chat_buckets >= 2 and max_vocab >= 0"
            )
        self.process_id = schema.process_id
        self.schema_hash = schema.schema_hash()
        self.max_history = max_history
        self.max_chat_tokens = max_chat_tokens
        self.chat_buckets = chat_buckets
        self.max_vocab = max_vocab
        self.action_names: tuple[str, ...] = tuple(schema.action_names)
        self._action_index = {name: i + 1 for i, name in enumerate(self.action_names)}
        self.unknown_action = len(self.action_names) + 1

        self._cat_fields = tuple(f.name for f in categorical_fields(schema))
        fixed = fixed_vocabularies(schema)
        self.vocabularies: dict[str, tuple[str, ...]] = {}
        for name in self._cat_fields:
            self.vocabularies[f"field:{name}"] = tuple(vocabularies.get(f"field:{name}", ()))[:max_vocab]
        for column, vocab in fixed.items():
            self.vocabularies[column] = tuple(vocab)
        self._lookup = [{key: i + 2 for i, key in enumerate(vocab)} for vocab in self.vocabularies.values()]

        self._num_fields = tuple(f.name for f in numeric_fields(schema))
        self.numeric_stats: dict[str, tuple[float, float]] = {
            name: numeric_stats.get(name, (0.0, 1.0)) for name in self._num_fields
        }

        self._pii_fields = tuple(sorted(schema.pii_fields))
        self._pii_arguments = {
            spec.name: tuple(arg.name for arg in spec.arguments if arg.pii)
            for spec in schema.actions
            if any(arg.pii for arg in spec.arguments)
        }
        self._speaker_tokens = {s: self._hash(f"\x00{s.value}") for s in Speaker}
        self._pii_token = self._hash(_PII_TOKEN)
        self._text_cache: dict[str, tuple[tuple[str, ...], tuple[int, ...]]] = {}

    # -- building ---------------------------------------------------------------------------

    @classmethod
    def fit(
        cls,
        schema: ProcessSchema,
        events: Iterable[UIStateChanged],
        max_history: int = DEFAULT_MAX_HISTORY,
        *,
        max_chat_tokens: int = DEFAULT_MAX_CHAT_TOKENS,
        chat_buckets: int = DEFAULT_CHAT_BUCKETS,
        max_vocab: int = DEFAULT_MAX_VOCAB,
    ) -> FeatureEncoder:
        """Learn vocabularies (the ``max_vocab`` most frequent values per field) and numeric scaling.

        :param max_history: actions kept in ``history``; default 8.
        :param max_chat_tokens: hashed words kept from the chat tail; default 64.
        :param chat_buckets: hash buckets of chat words, padding included; default 4096.
        :param max_vocab: values kept per categorical field; default 50.
        """
        cat_fields = [f.name for f in categorical_fields(schema)]
        num_fields = [f.name for f in numeric_fields(schema)]
        counts: dict[str, Counter[str]] = {name: Counter() for name in cat_fields}
        values: dict[str, list[float]] = {name: [] for name in num_fields}
        for event in events:
            fields = event.ui_state.fields
            for name in cat_fields:
                key = value_key(fields.get(name))
                if key is not None:
                    counts[name][key] += 1
            for name in num_fields:
                number = as_number(fields.get(name))
                if number is not None:
                    values[name].append(number)
        vocabularies = {
            # Ties broken by value so that the same events always give the same indices.
            f"field:{name}": [key for key, _ in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))[:max_vocab]]
            for name, counter in counts.items()
        }
        numeric_stats: dict[str, tuple[float, float]] = {}
        for name, seen in values.items():
            if not seen:
                numeric_stats[name] = (0.0, 1.0)
                continue
            arr = np.asarray(seen, dtype=np.float64)
            std = float(arr.std())
            numeric_stats[name] = (float(arr.mean()), std if std > 1e-12 else 1.0)
        return cls(
            schema,
            vocabularies=vocabularies,
            numeric_stats=numeric_stats,
            max_history=max_history,
            max_chat_tokens=max_chat_tokens,
            chat_buckets=chat_buckets,
            max_vocab=max_vocab,
        )

    def to_json(self) -> str:
        """The learned state, to be saved with a model artefact."""
        payload: dict[str, Any] = {
            "format": ENCODER_FORMAT,
            "process_id": self.process_id,
            "schema_hash": self.schema_hash,
            "max_history": self.max_history,
            "max_chat_tokens": self.max_chat_tokens,
            "chat_buckets": self.chat_buckets,
            "max_vocab": self.max_vocab,
            "actions": list(self.action_names),
            "vocabularies": {name: list(vocab) for name, vocab in self.vocabularies.items()},
            "numeric_stats": {name: list(stat) for name, stat in self.numeric_stats.items()},
        }
        return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str, schema: ProcessSchema) -> FeatureEncoder:
        """Rebuild a saved encoder; refuses one fit for a different version of the schema."""
        try:
            payload = json.loads(text)
            if payload["format"] != ENCODER_FORMAT:
                raise FeatureEncoderError(f"encoder format {payload['format']!r}, expected {ENCODER_FORMAT}")
            if payload["schema_hash"] != schema.schema_hash():
                raise FeatureEncoderError(
                    f"encoder was fit for schema {payload['process_id']!r} hash {payload['schema_hash']}, "
                    f"not {schema.process_id!r} hash {schema.schema_hash()}"
                )
            return cls(
                schema,
                vocabularies=payload["vocabularies"],
                numeric_stats={name: (float(m), float(s)) for name, (m, s) in payload["numeric_stats"].items()},
                max_history=int(payload["max_history"]),
                max_chat_tokens=int(payload["max_chat_tokens"]),
                chat_buckets=int(payload["chat_buckets"]),
                max_vocab=int(payload["max_vocab"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise FeatureEncoderError(f"unreadable feature encoder: {exc}") from exc

    # -- shape --------------------------------------------------------------------------------

    @property
    def categorical_names(self) -> tuple[str, ...]:
        return tuple(self.vocabularies)

    @property
    def numeric_names(self) -> tuple[str, ...]:
        per_field = [n for name in self._num_fields for n in (name, f"{name}:missing")]
        return (*per_field, *NUMERIC_TAIL)

    @property
    def cardinalities(self) -> tuple[int, ...]:
        """Embedding sizes of the categorical columns, in column order (missing and OOV included)."""
        return tuple(len(vocab) + 2 for vocab in self.vocabularies.values())

    @property
    def n_actions(self) -> int:
        """Size of the action index space: padding, the schema's actions, unknown."""
        return len(self.action_names) + 2

    @property
    def dims(self) -> dict[str, int]:
        return {
            "history": self.max_history,
            "action_vocab": self.n_actions,
            "categorical": len(self.vocabularies),
            "numeric": len(self.numeric_names),
            "chat_tokens": self.max_chat_tokens,
            "chat_vocab": self.chat_buckets,
        }

    def valid_action_mask(self) -> BoolArray:
        mask = np.zeros(self.n_actions, dtype=np.bool_)
        mask[1 : self.unknown_action] = True
        return mask

    def action_index(self, action_type: str) -> int:
        return self._action_index.get(action_type, self.unknown_action)

    # -- encoding -----------------------------------------------------------------------------

    def transform(self, events: Sequence[UIStateChanged]) -> EncodedBatch:
        history: list[list[int]] = []
        categorical: list[list[int]] = []
        numeric: list[list[float]] = []
        chat: list[list[int]] = []
        for event in events:
            history.append(self._history(event))
            categorical.append(self._categorical(event))
            numeric.append(self._numeric(event))
            chat.append(self._chat(event))
        n = len(events)
        return EncodedBatch(
            history=np.array(history, dtype=np.int64).reshape(n, self.max_history),
            categorical=np.array(categorical, dtype=np.int64).reshape(n, len(self.vocabularies)),
            numeric=np.array(numeric, dtype=np.float32).reshape(n, len(self.numeric_names)),
            chat_tokens=np.array(chat, dtype=np.int64).reshape(n, self.max_chat_tokens),
        )

    def _history(self, event: UIStateChanged) -> list[int]:
        recent = event.ui_state.recent_actions[-self.max_history :]
        unknown = self.unknown_action
        row = [self._action_index.get(a.action_type, unknown) for a in recent]
        return [PAD] * (self.max_history - len(row)) + row

    def _categorical(self, event: UIStateChanged) -> list[int]:
        fields = event.ui_state.fields
        chat = event.ui_state.chat_tail
        keys: list[str | None] = [value_key(fields.get(name)) for name in self._cat_fields]
        keys.append(event.business_cluster)
        keys.append(event.actor.value)
        keys.append(chat[-1].speaker.value if chat else None)
        return [
            MISSING if key is None else lookup.get(key, OOV) for key, lookup in zip(keys, self._lookup, strict=True)
        ]

    def _numeric(self, event: UIStateChanged) -> list[float]:
        fields = event.ui_state.fields
        row: list[float] = []
        for name in self._num_fields:
            number = as_number(fields.get(name))
            if number is None:
                row += (0.0, 1.0)
            else:
                mean, std = self.numeric_stats[name]
                row += (min(max((number - mean) / std, -Z_CLIP), Z_CLIP), 0.0)

        state = event.ui_state
        row.append(math.log1p(event.state_version))
        if state.case_started_at is None:
            row += (0.0, 1.0)
        else:
            row += (math.log1p(max(0.0, (event.timestamp - state.case_started_at).total_seconds())), 0.0)

        # UTC, because that is what the timestamp is after an Avro round trip (timestamp-micros).
        ts = event.timestamp.astimezone(UTC)
        hour = ts.hour + ts.minute / 60 + ts.second / 3600
        day = ts.weekday() + hour / 24
        row += (
            math.sin(2 * math.pi * hour / 24),
            math.cos(2 * math.pi * hour / 24),
            math.sin(2 * math.pi * day / 7),
            math.cos(2 * math.pi * day / 7),
        )

        row.append(math.log1p(len(state.chat_tail)))
        # No action carries a timestamp; the newest chat turn's is the closest derivable "last activity".
        last_at = next((turn.at for turn in reversed(state.chat_tail) if turn.at is not None), None)
        if last_at is None:
            row += (0.0, 1.0)
        else:
            row += (math.log1p(max(0.0, (event.timestamp - last_at).total_seconds())), 0.0)
        return row

    def _hash(self, word: str) -> int:
        return zlib.crc32(word.encode("utf-8")) % (self.chat_buckets - 1) + 1

    def _text_ids(self, text: str) -> tuple[tuple[str, ...], tuple[int, ...]]:
        """Words of a chat text and their hashed ids.

        Memoised, because tokenizing and hashing are most of a transform's cost and consecutive
        states of a session repeat the same chat turns. The memo never changes a result.
        """
        hit = self._text_cache.get(text)
        if hit is None:
            if len(self._text_cache) >= _TEXT_CACHE_SIZE:
                self._text_cache.clear()
            words = tuple(_WORD.findall(text.lower()))
            hit = self._text_cache[text] = (words, tuple(self._hash(w) for w in words))
        return hit

    def _pii_words(self, event: UIStateChanged) -> frozenset[str]:
        values: list[Scalar] = [event.ui_state.fields.get(name) for name in self._pii_fields]
        if self._pii_arguments:
            for action in event.ui_state.recent_actions:
                for arg in self._pii_arguments.get(action.action_type, ()):
                    values.append(action.arguments.get(arg))
        return pii.pii_words(values)

    def _chat(self, event: UIStateChanged) -> list[int]:
        turns = event.ui_state.chat_tail
        budget = self.max_chat_tokens
        if not turns:
            return [PAD] * budget
        pii = self._pii_words(event)
        # Walk back from the newest turn and stop once the tail is full: old turns are never tokenized.
        pieces: list[Sequence[int]] = []
        need = budget
        for turn in reversed(turns):
            words, ids = self._text_ids(turn.text)
            if pii and not pii.isdisjoint(words):
                ids = tuple(self._pii_token if w in pii else i for w, i in zip(words, ids, strict=True))
            if len(ids) >= need:
                pieces.append(ids[len(ids) - need :])
                break
            pieces.append((self._speaker_tokens[turn.speaker], *ids))
            need -= len(ids) + 1
            if need == 0:
                break
        row = [token for ids in reversed(pieces) for token in ids]
        return [PAD] * (budget - len(row)) + row
