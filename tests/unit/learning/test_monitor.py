"""The precision monitor: a test martingale that may look after every outcome.

Checked by simulation on both sides: at the target it raises a false alarm in at most ``delta`` of
runs however long they run; below it, the alarm comes, and a collapse is caught in a handful of
outcomes."""

from __future__ import annotations

import numpy as np
import pytest

from selective_autonomy.learning.monitor import watch

TARGET, DELTA = 0.9, 0.1


def run(precision: float, n: int, seed: int, probabilities: np.ndarray | None = None) -> tuple[bool, int | None]:
    rng = np.random.default_rng(seed)
    accepted = rng.random(n) < precision
    p = np.full(n, 0.05) if probabilities is None else probabilities
    reading = watch(accepted.tolist(), p.tolist(), TARGET, DELTA)
    return reading.alarm, reading.alarm_at


def test_a_collapse_is_caught_within_a_handful_of_outcomes() -> None:
    reading = watch([False] * 10, [0.05] * 10, TARGET, DELTA)
    assert reading.alarm and reading.alarm_at is not None and reading.alarm_at <= 2
    # ... also after a long healthy run, where the martingale's wealth has melted: the detector.
    history = [True] * 1000 + [False] * 10
    late = watch(history, [0.05] * len(history), TARGET, DELTA)
    assert late.alarm and late.alarm_at is not None and late.alarm_at - 1000 <= 4
    assert late.alarm_by == "detector"


def test_at_the_target_the_martingale_raises_false_alarms_in_at_most_delta_of_runs() -> None:
    readings = [
        watch((np.random.default_rng(seed).random(3000) < TARGET).tolist(), [0.05] * 3000, TARGET, DELTA, arl=1e300)
        for seed in range(200)
    ]
    assert np.mean([r.alarm for r in readings]) <= DELTA


def test_at_the_target_the_detector_waits_at_least_arl_outcomes_on_average() -> None:
    arl, horizon = 100.0, 3000
    times = []
    for seed in range(200):
        accepted = (np.random.default_rng(seed).random(horizon) < TARGET).tolist()
        reading = watch(accepted, [0.05] * horizon, TARGET, 1e-300, arl=arl)  # the detector alone
        times.append(reading.alarm_at + 1 if reading.alarm_at is not None else horizon)
    assert np.mean(times) >= arl


def test_weighted_outcomes_at_the_target_stay_below_delta() -> None:
    """Audits (4%) and exploration steps (5%) mixed: the importance weights keep the test valid."""
    rng = np.random.default_rng(7)
    alarms = []
    for seed in range(200):
        p = np.where(rng.random(2000) < 0.5, 0.04, 0.05)
        accepted = (np.random.default_rng(seed).random(2000) < TARGET).tolist()
        alarms.append(watch(accepted, p.tolist(), TARGET, DELTA, arl=1e300).alarm)
    assert np.mean(alarms) <= DELTA


@pytest.mark.parametrize(("precision", "within"), [(0.5, 20), (0.8, 300)])
def test_below_the_target_the_alarm_comes(precision: float, within: int) -> None:
    caught = [run(precision, within, seed) for seed in range(100)]
    assert np.mean([alarm for alarm, _ in caught]) >= 0.9


def test_the_estimate_is_the_weighted_share_accepted() -> None:
    reading = watch([True, False, True], [0.5, 0.5, 0.25], TARGET, DELTA)
    assert reading.estimate == pytest.approx((2 + 0 + 4) / (2 + 2 + 4))
    assert not reading.alarm and reading.outcomes == 3 and reading.accepted == 2


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="inclusion probabilities"):
        watch([True], [0.0], TARGET, DELTA)
    with pytest.raises(ValueError, match="2 outcomes but 1"):
        watch([True, False], [0.1], TARGET, DELTA)
    assert watch([], [], TARGET, DELTA).wealth == 1.0
