"""MAPIE-certified thresholds: certified where the data allow, absent where they do not."""

from __future__ import annotations

import numpy as np

from selective_autonomy.inference.calibration import ScoredFeedback, calibrate_thresholds, certify_threshold
from selective_autonomy.schemas.events import ActionTier


def simulated(n: int, seed: int) -> tuple[list[float], list[bool]]:
    rng = np.random.default_rng(seed)
    scores = rng.random(n)
    accepted = rng.random(n) < scores  # a calibrated critic: P(accept | score) = score
    return scores.tolist(), accepted.tolist()


def test_certified_threshold_has_true_precision_above_target() -> None:
    # True precision at threshold t is (1 + t) / 2 here, so >= 0.9 exactly when t >= 0.8.
    certified = [certify_threshold(*simulated(3000, seed), target_precision=0.9, confidence=0.9) for seed in range(10)]
    assert sum(t is not None for t in certified) >= 8
    assert all(t >= 0.8 for t in certified if t is not None)


def test_nothing_is_certified_without_enough_evidence() -> None:
    assert certify_threshold(*simulated(40, 0), target_precision=0.95, confidence=0.9) is None
    assert certify_threshold([0.99] * 50, [False] * 50) is None


def test_calibration_is_per_cluster_and_tier_and_skips_approval_required() -> None:
    scores, accepted = simulated(3000, 1)
    items = [ScoredFeedback("p", "big", ActionTier.critical, s, a) for s, a in zip(scores, accepted, strict=True)] + [
        ScoredFeedback("p", "small", ActionTier.critical, s, a) for s, a in zip(scores[:50], accepted[:50], strict=True)
    ]
    items += [ScoredFeedback("p", "big", ActionTier.approval_required, 0.99, True)] * 500
    report = calibrate_thresholds(items, target_precision=0.9, confidence=0.9, min_samples=100)
    by_key = {r.key: r for r in report.results}
    assert set(by_key) == {"p/big/critical", "p/small/critical"}
    assert by_key["p/big/critical"].threshold is not None
    assert by_key["p/small/critical"].threshold is None  # 50 samples < min_samples
    thresholds = report.thresholds("v1")
    assert thresholds.get("p", "big", ActionTier.critical) == by_key["p/big/critical"].threshold
    assert thresholds.get("p", "small", ActionTier.critical) is None
    assert 0 < report.certified_coverage() < 1
