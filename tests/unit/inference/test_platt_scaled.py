"""A critic's own probabilities recalibrated on held-out answers (what the LLM critic gets before the gate)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytest
import torch

from selective_autonomy.inference.critic import PlattScaled, _fit_platt
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


class Saturated:
    """Says accept at 0.99999 or surer whatever it is shown (a critic that learned only the base rate)."""

    version = "saturated"

    def score(self, items: Sequence[CriticInput]) -> list[float]:
        return [0.99999 if item.event.state_version % 17 else 0.999999 for item in items]


class Certain:
    """Says 1.0 for everything."""

    version = "certain"

    def score(self, items: Sequence[CriticInput]) -> list[float]:
        return [1.0 for _ in items]


def test_scores_that_barely_vary_are_scaled_to_the_base_rate_not_to_zero_or_one() -> None:
    # Fitting a and b on such logits directly diverged: every scaled score came out exactly 0 or 1.
    items = _items(1064)
    labels = [i % 20 < 17 for i in range(1064)]  # 85% accepted
    scaled = PlattScaled.fit(Saturated(), items, labels)
    scores = scaled.score(items)
    assert all(0.5 < s < 0.99 for s in scores)
    assert sum(scores) / len(scores) == pytest.approx(0.85, abs=0.02)


def test_scores_that_do_not_vary_at_all_give_the_held_out_accept_rate() -> None:
    items = _items(100)
    labels = [i % 10 < 8 for i in range(100)]
    scaled = PlattScaled.fit(Certain(), items, labels)
    assert scaled.platt[0] == 0.0
    assert scaled.score(items) == pytest.approx([0.8] * 100, abs=1e-5)


@pytest.mark.parametrize(
    ("mean", "spread", "slope", "intercept"), [(2, 3, 0.5, 0.3), (-1, 5, 0.2, 1.5), (8, 2, 0.7, -4)]
)
def test_the_fit_reaches_the_log_loss_optimum_on_wide_and_shifted_logits(
    mean: float, spread: float, slope: float, intercept: float
) -> None:
    # The fit on raw logits returned NaN for (-1, 5) and |a| ~ 1e13 for (8, 2): the embedded critic's
    # logits on BPI 2012 W are of that kind.
    generator = torch.Generator().manual_seed(0)
    logits = mean + spread * torch.randn(5000, generator=generator)
    labels = (torch.rand(5000, generator=generator) < torch.sigmoid(slope * logits + intercept)).float()
    a, b = _fit_platt(logits, labels)

    reference = torch.zeros(2, requires_grad=True)
    optimiser = torch.optim.LBFGS([reference], line_search_fn="strong_wolfe", max_iter=1000, tolerance_grad=1e-12)

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(reference[0] * logits + reference[1], labels)
        loss.backward()  # type: ignore[no-untyped-call]
        return loss

    optimiser.step(closure)  # type: ignore[no-untyped-call]
    assert (a, b) == pytest.approx((reference[0].item(), reference[1].item()), abs=0.01)
