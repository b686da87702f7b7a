"""PII masking lives in schemas/pii.py: whole values for text readers, words for the feature encoder."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest

from selective_autonomy.inference.feature_encoder import FeatureEncoder
from selective_autonomy.schemas import pii
from selective_autonomy.schemas.event_parts import Action, Scalar, Speaker
from selective_autonomy.schemas.view import render_view
from tests.support.strategies import SCHEMA, make_event

EVENT = make_event(
    fields={"customer_name": "Ada Lovelace", "email": "ada@example.com", "status": "open"},
    chat=[(Speaker.customer, "Hi, Lovelace here, ada@example.com"), (Speaker.operator, "Hello Ada Lovelace")],
    recent=[Action(action_type="schedule_callback", arguments={"phone": "555-0100", "at": "2024-03-04T10:00:00Z"})],
)


def test_the_pii_of_a_state_is_its_flagged_fields_and_flagged_arguments() -> None:
    assert set(pii.pii_sources(EVENT, SCHEMA)) >= {"Ada Lovelace", "ada@example.com", "555-0100"}
    assert "open" not in pii.pii_sources(EVENT, SCHEMA)
    assert pii.quoted_values(["Ada", "Ada Lovelace", "12", None, True, 12345]) == ["Ada Lovelace", "12345", "Ada"]


def test_text_masks_whole_values_and_keeps_the_rest_readable() -> None:
    scrub = pii.pii_scrubber(pii.pii_values(EVENT, SCHEMA))
    assert scrub("Hello Ada Lovelace") == f"Hello {pii.MASK}"
    assert scrub("Hi, Lovelace here") == "Hi, Lovelace here"  # a part of a value is not a quote of it
    assert pii.masked_value(5550100, pii.pii_scrubber(["5550100"])) == pii.MASK
    assert pii.masked_value(42, scrub) == 42


def test_features_mask_every_word_of_a_value_case_insensitively() -> None:
    words = pii.pii_words(pii.pii_sources(EVENT, SCHEMA))
    assert {"ada", "lovelace", "example", "com", "555", "0100"} <= words
    assert "open" not in words
    assert pii.pii_words([None, True]) == frozenset()


def _spy(monkeypatch: pytest.MonkeyPatch, name: str) -> list[object]:
    calls: list[object] = []
    real = getattr(pii, name)

    def spy(values: Iterable[Scalar] | Iterable[str]) -> object:
        values = list(values)
        calls.append(values)
        return real(values)

    monkeypatch.setattr(pii, name, spy)
    return calls


def test_the_text_view_masks_through_the_pii_module(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _spy(monkeypatch, "pii_scrubber")
    text = render_view(EVENT, SCHEMA).text
    assert calls and "Ada Lovelace" in calls[0]  # type: ignore[operator]
    assert "Ada Lovelace" not in text and "Lovelace here" in text


def test_the_feature_encoder_masks_through_the_pii_module(monkeypatch: pytest.MonkeyPatch) -> None:
    encoder = FeatureEncoder.fit(SCHEMA, [EVENT], max_chat_tokens=16)
    calls = _spy(monkeypatch, "pii_words")
    batch = encoder.transform([EVENT])
    assert calls and "Ada Lovelace" in calls[0]  # type: ignore[operator]
    other = make_event(
        fields={"customer_name": "Grace Hopper", "email": "grace@example.org", "status": "open"},
        chat=[(Speaker.customer, "Hi, Hopper here, grace@example.org"), (Speaker.operator, "Hello Grace Hopper")],
        recent=[Action(action_type="schedule_callback", arguments={"phone": "555-0199", "at": "2024-03-04T10:00:00Z"})],
    )
    # Every word of a value is one <pii> token: the partial mention "Hopper here" encodes as "Lovelace here".
    assert (encoder.transform([other]).chat_tokens == batch.chat_tokens).all()


def test_no_other_module_masks_on_its_own() -> None:
    package = Path(pii.__file__).parents[1]
    others = [path for path in package.rglob("*.py") if path != Path(pii.__file__)]
    for marker in ('"[masked]"', "def pii_scrubber", "def pii_words", "def masked_value"):
        assert [str(p.relative_to(package)) for p in others if marker in p.read_text()] == [], marker
