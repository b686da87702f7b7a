"""The online lift over certified thresholds: its update, its floor and its deterministic bound."""

from __future__ import annotations

import numpy as np
import pytest

from selective_autonomy.learning.threshold_lift import threshold_lift


def test_a_rejection_raises_and_an_acceptance_lowers_never_below_zero() -> None:
    assert threshold_lift([], [], 0.9, 0.02) == 0.0
    assert threshold_lift([False], [0.04], 0.9, 0.02) == pytest.approx(0.018)
    assert threshold_lift([False, True], [0.04, 0.04], 0.9, 0.02) == pytest.approx(0.016)
    assert threshold_lift([True] * 10, [0.04] * 10, 0.9, 0.02) == 0.0  # the certificate is the floor
    assert threshold_lift([False] * 5, [0.04] * 5, 0.9, 0.0) == 0.0


@pytest.mark.parametrize("precision", [0.5, 0.8, 0.88, 0.9, 0.95])
def test_the_accepted_share_never_falls_below_target_by_more_than_the_bound(precision: float) -> None:
    rng = np.random.default_rng(7)
    step, target = 0.02, 0.9
    for n in (10, 100, 1000):
        accepted = [bool(a) for a in rng.random(n) < precision]
        lift = threshold_lift(accepted, [0.04] * n, target, step)
        assert np.mean(accepted) >= target - lift / (step * n) - 1e-12


def test_a_drop_below_target_keeps_raising_the_lift() -> None:
    rng = np.random.default_rng(3)
    accepted = [bool(a) for a in rng.random(500) < 0.85]
    lifts = [threshold_lift(accepted[:n], [0.04] * n, 0.9, 0.02) for n in (100, 300, 500)]
    assert lifts[0] < lifts[1] < lifts[2]  # 5 points short: about 0.001 a judgement


def test_a_judgement_sampled_more_often_moves_the_thresholds_less() -> None:
    assert threshold_lift([True, False], [0.04, 0.08], 0.9, 0.02) == pytest.approx(0.009)


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="inclusion probabilities"):
        threshold_lift([True], [0.04, 0.04], 0.9, 0.02)
    with pytest.raises(ValueError, match="lie in"):
        threshold_lift([True], [0.0], 0.9, 0.02)
    with pytest.raises(ValueError, match="step"):
        threshold_lift([True], [0.04], 0.9, -1.0)
