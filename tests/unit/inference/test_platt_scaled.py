"""A critic's own probabilities recalibrated on held-out answers (what the LLM critic gets before the gate)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytest

from selective_autonomy.inference.critic import PlattScaled
from selective_autonomy.inference.protocol import CriticInput, PolicySignals
from selective_autonomy.schemas.event_parts import ActionTier
from tests.factories import event, flow


class Overconfident:
    """Says 0.99 or 0.01, but is right only 70% of the time."""

    version = "overconfident"

    def score(self, items: Sequence[CriticInput]) -> list[float]:
        return [0.99 if item.signals.probability > 0.5 else 0.01 for item in items]


def _items(n: int) -> list[CriticInput]:
    action = flow("pro")[0]
    return [
        CriticInput(
            event=event(version=i + 1),
            action=action,
            tier=ActionTier.auto,
            signals=PolicySignals(probability=0.9 if i % 2 else 0.1),
        )
        for i in range(n)
    ]


def _log_loss(scores: Sequence[float], labels: Sequence[bool]) -> float:
    return -sum(math.log(s if y else 1 - s) for s, y in zip(scores, labels, strict=True)) / len(labels)


def test_scaling_fits_the_held_out_answers_and_keeps_the_order() -> None:
    items = _items(200)
    # High scores are accepted 70% of the time, low ones 30%.
    labels = [(i % 2 == 1) == ((i // 2) % 10 < 7) for i in range(200)]
    inner = Overconfident()
    scaled = PlattScaled.fit(inner, items, labels)
    raw, calibrated = inner.score(items), scaled.score(items)
    assert _log_loss(calibrated, labels) < 0.7 * _log_loss(raw, labels)
    high = [s for s, item in zip(calibrated, items, strict=True) if item.signals.probability > 0.5]
    low = [s for s, item in zip(calibrated, items, strict=True) if item.signals.probability <= 0.5]
    assert abs(sum(high) / len(high) - 0.7) < 0.05 and abs(sum(low) / len(low) - 0.3) < 0.05
    assert min(high) > max(low)  # monotone: the gate's order of steps is the critic's
    assert scaled.version == "overconfident"


def test_without_held_out_answers_the_scores_stay_as_they_are() -> None:
    items = _items(4)
    scaled = PlattScaled.fit(Overconfident(), [], [])
    assert scaled.score(items) == pytest.approx([0.01, 0.99, 0.01, 0.99], abs=1e-5)
