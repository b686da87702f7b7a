from __future__ import annotations

import json
from datetime import timedelta

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from selective_autonomy.inference.feature_encoder import FeatureEncoder, FeatureEncoderError
from selective_autonomy.inference.feature_layout import OOV, action_index_size, valid_action_mask
from selective_autonomy.schemas.event_parts import Action, ChatTurn, Speaker
from selective_autonomy.schemas.events import UIStateChanged
from selective_autonomy.schemas.process import ProcessSchema
from tests.support.strategies import SCHEMA, T0, make_event, ui_events

TRAIN = [
    make_event(fields={"status": "open", "order_id": "A1", "amount": 10.0, "items": 1, "vip": True}),
    make_event(fields={"status": "open", "order_id": "A2", "amount": 30.0, "items": 3}),
    make_event(fields={"status": "pending", "amount": 20.0, "vip": False}, business_cluster="vip"),
]


@pytest.fixture(scope="module")
def encoder() -> FeatureEncoder:
    return FeatureEncoder.fit(SCHEMA, TRAIN, max_history=4, max_chat_tokens=12)


def test_shapes_and_dtypes(encoder: FeatureEncoder) -> None:
    batch = encoder.transform(TRAIN)
    dims = encoder.dims
    assert len(batch) == 3
    assert batch.history.shape == (3, dims["history"]) and batch.history.dtype == np.int64
    assert batch.categorical.shape == (3, dims["categorical"]) and batch.categorical.dtype == np.int64
    assert batch.numeric.shape == (3, dims["numeric"]) and batch.numeric.dtype == np.float32
    assert batch.chat_tokens.shape == (3, dims["chat_tokens"]) and batch.chat_tokens.dtype == np.int64
    assert len(encoder.cardinalities) == dims["categorical"] == len(encoder.categorical_names)
    assert dims["numeric"] == len(encoder.numeric_names)
    assert (batch.categorical < np.array(encoder.cardinalities)).all()
    assert np.isfinite(batch.numeric).all()


def test_empty_batch(encoder: FeatureEncoder) -> None:
    batch = encoder.transform([])
    assert batch.history.shape == (0, 4) and batch.numeric.shape == (0, encoder.dims["numeric"])


def test_pii_fields_are_not_features(encoder: FeatureEncoder) -> None:
    names = [*encoder.categorical_names, *encoder.numeric_names]
    assert not [n for n in names if "customer_name" in n or "email" in n]
    assert "field:order_id" in names and "field:note" not in names  # free text is not categorical


def test_pii_values_do_not_change_the_encoding(encoder: FeatureEncoder) -> None:
    def with_name(name: str) -> UIStateChanged:
        return make_event(
            fields={"customer_name": name, "email": f"{name}@example.com", "status": "open"},
            chat=[(Speaker.customer, f"hello I am {name}"), (Speaker.operator, f"hi {name}, welcome")],
        )

    a, b = encoder.transform([with_name("Ada")]), encoder.transform([with_name("Grace")])
    for field in ("history", "categorical", "numeric", "chat_tokens"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))


def test_vocabulary_missing_and_oov(encoder: FeatureEncoder) -> None:
    col = encoder.categorical_names.index("field:status")
    vocab = encoder.vocabularies["field:status"]
    assert vocab == ("open", "pending")  # by frequency
    rows = encoder.transform(
        [
            make_event(fields={"status": "open"}),
            make_event(fields={"status": "resolved"}),
            make_event(fields={"status": ""}),
        ]
    ).categorical[:, col]
    assert rows.tolist() == [2, OOV, 0]
    cluster = encoder.categorical_names.index("business_cluster")
    oov_cluster = encoder.transform([make_event(business_cluster="brand-new")]).categorical[0, cluster]
    assert oov_cluster == OOV


def test_vocabulary_is_capped_to_most_frequent() -> None:
    events = [make_event(fields={"order_id": f"o{i}"}) for i in range(60) for _ in range(1 + (i < 5))]
    enc = FeatureEncoder.fit(SCHEMA, events, max_vocab=50)
    vocab = enc.vocabularies["field:order_id"]
    assert len(vocab) == 50 and vocab[:5] == ("o0", "o1", "o2", "o3", "o4")
    assert enc.cardinalities[enc.categorical_names.index("field:order_id")] == 52


def test_numeric_standardised_with_missing_indicator(encoder: FeatureEncoder) -> None:
    names = encoder.numeric_names
    batch = encoder.transform([*TRAIN, make_event(fields={"amount": "not a number"})])
    amount = batch.numeric[:, names.index("amount")]
    missing = batch.numeric[:, names.index("amount:missing")]
    assert amount[:3].mean() == pytest.approx(0.0, abs=1e-6) and amount[:3].std() == pytest.approx(1.0, abs=1e-6)
    assert amount[3] == 0.0 and missing.tolist() == [0.0, 0.0, 0.0, 1.0]
    assert batch.numeric[0, names.index("step_log1p")] == pytest.approx(np.log1p(3))
    assert batch.numeric[0, names.index("elapsed_log1p")] == pytest.approx(np.log1p(90))


def test_time_since_last_chat_turn(encoder: FeatureEncoder) -> None:
    event = make_event()
    turn = ChatTurn(speaker=Speaker.customer, text="hi", at=T0 - timedelta(seconds=20))
    event = event.model_copy(update={"ui_state": event.ui_state.model_copy(update={"chat_tail": [turn]})})
    names = encoder.numeric_names
    row = encoder.transform([make_event(), event]).numeric
    assert row[0, names.index("since_last_turn_missing")] == 1.0
    assert row[1, names.index("since_last_turn_log1p")] == pytest.approx(np.log1p(20))


def test_history_padding_order_and_unknown(encoder: FeatureEncoder) -> None:
    idx = {name: i + 1 for i, name in enumerate(SCHEMA.action_names)}
    short = make_event(recent=[Action(action_type="lookup_order"), Action(action_type="teleport")])
    long = make_event(recent=[Action(action_type=name) for name in SCHEMA.action_names])
    history = encoder.transform([short, long]).history
    unknown = len(SCHEMA.actions) + 1
    assert history[0].tolist() == [0, 0, idx["lookup_order"], unknown]
    assert history[1].tolist() == [idx[n] for n in SCHEMA.action_names[-4:]]
    assert encoder.action_index("teleport") == unknown


def test_valid_action_mask(encoder: FeatureEncoder) -> None:
    mask = valid_action_mask(SCHEMA)
    assert mask.dtype == np.bool_ and mask.shape == (action_index_size(SCHEMA),) == (encoder.n_actions,)
    assert not mask[0] and not mask[-1] and mask[1:-1].all()
    np.testing.assert_array_equal(mask, encoder.valid_action_mask())


def test_chat_tokens_keep_the_newest_words(encoder: FeatureEncoder) -> None:
    few = make_event(chat=[(Speaker.customer, "where is my parcel")])
    many = make_event(chat=[(Speaker.customer, " ".join(f"w{i}" for i in range(30))), (Speaker.bot, "ok then")])
    tokens = encoder.transform([few, many, make_event()]).chat_tokens
    assert (tokens[0, :7] == 0).all() and (tokens[0, 7:] > 0).all()  # speaker marker + 4 words
    assert (tokens[1] > 0).all() and (tokens[2] == 0).all()
    again = encoder.transform([make_event(chat=[(Speaker.bot, "ok then")])]).chat_tokens
    assert tokens[1, -3:].tolist() == again[0, -3:].tolist()
    assert (tokens < encoder.chat_buckets).all()


def test_json_round_trip(encoder: FeatureEncoder) -> None:
    text = encoder.to_json()
    restored = FeatureEncoder.from_json(text, SCHEMA)
    assert restored.to_json() == text
    assert restored.cardinalities == encoder.cardinalities and restored.dims == encoder.dims
    events = [*TRAIN, make_event(fields={"status": "weird"}, chat=[(Speaker.customer, "hi")])]
    a, b = encoder.transform(events), restored.transform(events)
    for field in ("history", "categorical", "numeric", "chat_tokens"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))


def test_from_json_refuses_another_schema(encoder: FeatureEncoder) -> None:
    other = ProcessSchema(process_id="other")
    with pytest.raises(FeatureEncoderError, match="hash"):
        FeatureEncoder.from_json(encoder.to_json(), other)
    broken = json.loads(encoder.to_json())
    del broken["numeric_stats"]
    with pytest.raises(FeatureEncoderError, match="unreadable"):
        FeatureEncoder.from_json(json.dumps(broken), SCHEMA)


@given(st.lists(ui_events(), max_size=12))
def test_fit_and_transform_are_deterministic(events: list[UIStateChanged]) -> None:
    first = FeatureEncoder.fit(SCHEMA, events)
    second = FeatureEncoder.fit(SCHEMA, list(events))
    assert first.to_json() == second.to_json()
    a, b = first.transform(events), second.transform(events)
    for field in ("history", "categorical", "numeric", "chat_tokens"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert np.isfinite(a.numeric).all()
    assert ((a.chat_tokens >= 0) & (a.chat_tokens < first.chat_buckets)).all()
    assert ((a.history >= 0) & (a.history < first.n_actions)).all()
