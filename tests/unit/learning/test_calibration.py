"""MAPIE-certified thresholds: certified where the data allow, absent where they do not, one per action type."""

from __future__ import annotations

import numpy as np

from selective_autonomy.learning.calibration import ScoredFeedback, calibrate_thresholds, certify_threshold
from selective_autonomy.schemas.event_parts import ActionTier


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


def test_calibration_is_per_cluster_tier_and_action_type_and_skips_approval_required() -> None:
    scores, accepted = simulated(3000, 1)
    items = [
        ScoredFeedback("p", "big", ActionTier.critical, "refund", s, a) for s, a in zip(scores, accepted, strict=True)
    ]
    items += [
        ScoredFeedback("p", "small", ActionTier.critical, "refund", s, a)
        for s, a in zip(scores[:50], accepted[:50], strict=True)
    ]
    # A weak action type next to an easy one: pooled they would pass at a low threshold.
    items += [ScoredFeedback("p", "big", ActionTier.critical, "close", 0.6, True)] * 2000
    items += [ScoredFeedback("p", "big", ActionTier.critical, "escalate", 0.6, i % 2 == 0) for i in range(300)]
    items += [ScoredFeedback("p", "big", ActionTier.approval_required, "wire", 0.99, True)] * 500
    report = calibrate_thresholds(items, target_precision=0.9, confidence=0.9, min_samples=100)
    by_key = {r.key: r for r in report.results}
    assert set(by_key) == {
        "p/big/critical/refund",
        "p/small/critical/refund",
        "p/big/critical/close",
        "p/big/critical/escalate",
    }
    assert by_key["p/big/critical/refund"].threshold is not None
    assert by_key["p/big/critical/close"].threshold is not None
    assert by_key["p/big/critical/escalate"].threshold is None  # 50% accepted: never at 90%
    assert by_key["p/small/critical/refund"].threshold is None  # 50 samples < min_samples
    refund = by_key["p/big/critical/refund"]
    assert refund.lower_bound is not None and refund.lower_bound < refund.empirical_precision  # type: ignore[operator]
    thresholds = report.thresholds("v1")
    assert thresholds.get("p", "big", ActionTier.critical, "refund") == refund.threshold
    assert thresholds.get("p", "big", ActionTier.critical, "escalate") is None
    assert thresholds.get("p", "small", ActionTier.critical, "refund") is None
    assert 0 < report.certified_coverage() < 1
    assert report.certified("p/big/") and not report.certified("p/small/")


def drifting(seed: int) -> list[ScoredFeedback]:
    """Two periods of one action type: the first period's middle scores are worse than the second's.

    Period 1: P(accept | s) = s - 0.2 below 0.95; period 2: a calibrated critic. Pooled, the middle
    scores average out near target; alone, period 1 does not reach it there."""
    rng = np.random.default_rng(seed)
    items = []
    for shift in (0.2, 0.0):
        scores = rng.random(3000)
        accepted = rng.random(3000) < np.where(scores < 0.95, scores - shift, scores)
        items += [
            ScoredFeedback("p", "c", ActionTier.critical, "refund", float(s), bool(a))
            for s, a in zip(scores, accepted, strict=True)
        ]
    return items


def test_blocks_require_each_period_to_certify_a_threshold() -> None:
    for seed in range(5):
        items = drifting(seed)
        pooled = calibrate_thresholds(items, 0.9, 0.9).results[0].threshold
        blocked = calibrate_thresholds(items, 0.9, 0.9, blocks=2).results[0].threshold
        first, second = (
            calibrate_thresholds(part, 0.9, 0.9).results[0].threshold for part in (items[:3000], items[3000:])
        )
        assert None not in (pooled, blocked, first, second)
        # The strictest block decides: the worse first period's own threshold, above the pooled one.
        assert blocked == max(first, second) == first  # type: ignore[type-var]
        assert blocked > pooled  # type: ignore[operator]


def test_one_block_is_the_pooled_certificate_and_a_block_without_a_threshold_voids_the_key() -> None:
    items = drifting(0)
    assert calibrate_thresholds(items, 0.9, 0.9, blocks=1) == calibrate_thresholds(items, 0.9, 0.9)
    hopeless = [ScoredFeedback("p", "c", ActionTier.critical, "refund", 0.99, False)] * 200
    assert calibrate_thresholds(items[:3000] + hopeless, 0.9, 0.9, blocks=2).results[0].threshold is None
