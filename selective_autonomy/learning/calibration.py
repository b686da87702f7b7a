"""Risk-controlled thresholds on the critic's score, certified with MAPIE.

For each (process, business cluster, tier, action type) with enough calibration feedback, MAPIE's
``BinaryClassificationController`` (Learn-Then-Test over a grid of candidate thresholds fixed in
advance, tested in a fixed sequence from the strictest down) finds the thresholds t such that, with probability at least
``confidence``, the precision of the steps whose score is >= t is at least ``target``: among the
steps the gate executes, operators would have accepted at least that share. The lowest certified
threshold is used (most coverage). Where nothing can be certified, the key is left out, so the
gate defers every step there (and a cluster with no key certified stays in copilot).

The guarantee is a fixed-sample one: it holds for steps like the calibration steps (exchangeable
with them), and only if those steps chose nothing else (the critic is picked on other data; see
``learning.critic_choice``). Whether it keeps holding on the future is the monitor's job.
"""

from __future__ import annotations

import logging
import warnings
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from mapie.risk_control import BinaryClassificationController
from mapie.risk_control.fwer_control import FWERFixedSequenceTesting
from pydantic import BaseModel, ConfigDict, Field
from scipy.stats import beta

from selective_autonomy.inference.thresholds import ThresholdKey, Thresholds
from selective_autonomy.schemas.event_parts import ActionTier

log = logging.getLogger(__name__)

# Fixed before seeing data, as the procedure requires, and ordered strictest first: precision
# grows with the threshold, so fixed-sequence testing downwards keeps the whole confidence budget
# for each step and stops at the first threshold it cannot certify. On simulated scores it
# certified far more often than Bonferroni-Holm over the same grid (30/30 vs 22/30 runs with
# 2,000 points at target 0.9), and never a threshold whose true precision was below target.
DEFAULT_GRID: tuple[float, ...] = tuple(float(x) for x in np.round(np.linspace(0.95, 0.5, 19), 3))


@dataclass(frozen=True)
class ScoredFeedback:
    """One held-out judgement: the critic's score of the suggestion and whether it was accepted."""

    process_id: str
    business_cluster: str
    tier: ActionTier
    action_type: str
    score: float
    accepted: bool


class CalibrationResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    key: str
    samples: int
    positives: int
    threshold: float | None = Field(description="Lowest certified threshold; None when nothing is certified.")
    coverage: float = Field(description="Share of calibration steps at or above the threshold.")
    empirical_precision: float | None = None
    lower_bound: float | None = Field(
        default=None,
        description="One-sided Clopper-Pearson lower bound, at the confidence level, on the precision of the "
        "calibration steps at or above the threshold (descriptive: the guarantee is the LTT test's).",
    )


class CalibrationReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    target_precision: float
    confidence: float
    min_samples: int
    results: list[CalibrationResult]

    def thresholds(self, version: str) -> Thresholds:
        return Thresholds(values={r.key: r.threshold for r in self.results if r.threshold is not None}, version=version)

    def certified_coverage(self, prefix: str = "") -> float:
        """Share of all calibration steps (of keys starting with ``prefix``) the certified thresholds execute."""
        results = [r for r in self.results if r.key.startswith(prefix)]
        total = sum(r.samples for r in results)
        covered = sum(r.coverage * r.samples for r in results if r.threshold is not None)
        return covered / total if total else 0.0

    def certified(self, prefix: str = "") -> bool:
        return any(r.threshold is not None for r in self.results if r.key.startswith(prefix))


def certify_threshold(
    scores: Sequence[float],
    accepted: Sequence[bool],
    target_precision: float = 0.95,
    confidence: float = 0.9,
    grid: Sequence[float] = DEFAULT_GRID,
) -> float | None:
    """The lowest threshold certified for ``target_precision`` at ``confidence``, or None."""
    x = np.asarray(scores, dtype=float).reshape(-1, 1)
    y = np.asarray(accepted, dtype=int)
    if y.sum() == 0:
        return None
    controller = BinaryClassificationController(
        predict_function=lambda features: np.column_stack([1.0 - features[:, 0], features[:, 0]]),
        risk="precision",
        target_level=target_precision,
        confidence_level=confidence,
        list_predict_params=np.asarray(grid),
        fwer_method=FWERFixedSequenceTesting(n_starts=1),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "no threshold certified" is an answer here, not a warning
        controller.calibrate(x, y)
    valid = controller.valid_predict_params
    if valid is None or len(valid) == 0:
        return None
    return float(np.min(valid))


def calibrate_thresholds(
    feedback: Sequence[ScoredFeedback],
    target_precision: float = 0.95,
    confidence: float = 0.9,
    min_samples: int = 100,
    grid: Sequence[float] = DEFAULT_GRID,
    blocks: int = 1,
) -> CalibrationReport:
    """Certify one threshold per (process, cluster, tier, action type) that has at least ``min_samples``.

    With ``blocks`` > 1 each key's feedback (in the order given: oldest first) is cut into that many
    consecutive blocks and certified on each alone; the key's threshold is the strictest of them,
    none where a block certifies nothing. Each block is a valid Learn-Then-Test on its own, so the
    intersection keeps the guarantee; what it adds is that a threshold must hold in every period
    of the window, not only on their average.
    """
    if blocks < 1:
        raise ValueError(f"blocks must be >= 1, got {blocks}")
    groups: dict[str, list[ScoredFeedback]] = defaultdict(list)
    for item in feedback:
        if item.tier is ActionTier.approval_required:
            continue  # never executed unattended: nothing to certify
        key = ThresholdKey(
            process_id=item.process_id,
            business_cluster=item.business_cluster,
            tier=item.tier,
            action_type=item.action_type,
        )
        groups[key.text()].append(item)
    results = []
    for text, items in sorted(groups.items()):
        scores = np.asarray([i.score for i in items])
        labels = np.asarray([i.accepted for i in items])
        threshold = None
        if len(items) >= min_samples:
            threshold = _strictest_over_blocks(scores, labels, target_precision, confidence, grid, blocks)
        covered = scores >= threshold if threshold is not None else np.zeros(len(items), dtype=bool)
        passed, right = int(covered.sum()), int(labels[covered].sum())
        results.append(
            CalibrationResult(
                key=text,
                samples=len(items),
                positives=int(labels.sum()),
                threshold=threshold,
                coverage=float(covered.mean()) if len(items) else 0.0,
                empirical_precision=right / passed if passed else None,
                lower_bound=_clopper_pearson_lower(right, passed, confidence) if passed else None,
            )
        )
    return CalibrationReport(
        target_precision=target_precision, confidence=confidence, min_samples=min_samples, results=results
    )


def _strictest_over_blocks(
    scores: np.ndarray,
    labels: np.ndarray,
    target_precision: float,
    confidence: float,
    grid: Sequence[float],
    blocks: int,
) -> float | None:
    """The lowest threshold every consecutive block certifies (fixed-sequence testing from the
    strictest grid value down certifies an upper set of the grid, so the intersection is the
    largest of the blocks' lowest thresholds)."""
    chosen: float | None = None
    for part in np.array_split(np.arange(len(scores)), blocks):
        threshold = certify_threshold(scores[part].tolist(), labels[part].tolist(), target_precision, confidence, grid)
        if threshold is None:
            return None
        chosen = threshold if chosen is None else max(chosen, threshold)
    return chosen


def _clopper_pearson_lower(successes: int, trials: int, confidence: float) -> float:
    if successes == 0:
        return 0.0
    return float(beta.ppf(1.0 - confidence, successes, trials - successes + 1))
