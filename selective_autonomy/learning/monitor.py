"""Anytime-valid watch over the precision of the steps that run: betting against the certificate.

A certificate is a claim about data like its calibration window. Whether it still holds is checked
on every judged step that ran or would have run (audits, and exploration steps the gate passed), in
the order they were judged, by betting against

    H0: at every moment, operators would accept at least ``target`` of the steps that run.

Each outcome ``y_i`` (1 when accepted) gives ``x_i = r_i * (target - y_i)``, with ``r_i`` an
importance weight known before ``y_i``; a bet ``lambda < 1 / (1 - target)`` turns it into the factor
``1 + lambda * x_i``, whose mean is at most 1 under H0 whatever the drift. Two statistics are kept,
each the mean over a fixed grid of bets (one bet is blind to some drops: a large one catches a
collapse in a few outcomes, a small one a moderate drop; their mean loses little to either):

* the **test martingale** since the cluster went selective, ``K_n = mean_j prod_i (1 + lambda_j x_i)``.
  By Ville's inequality ``P(sup_n K_n >= 1 / delta) <= delta``: the monitor may look after every
  outcome, forever, and raises a false alarm with probability at most ``delta`` (Waudby-Smith and
  Ramdas 2023). It is the strongest evidence against a certificate that was too generous from the
  start. But after a long healthy run its wealth has melted (each accepted step costs a little), so
  a later collapse would take many outcomes to show;
* a **Shiryaev-Roberts e-detector** for that, ``R_n = mean_j R_{j,n}``, ``R_{j,n} = (R_{j,n-1} + 1)
  (1 + lambda_j x_n)``: the sum of the bets started at every outcome, so evidence counts from
  wherever the change began. Under H0 ``E[R_n] <= n``, hence it alarms at ``R_n >= arl`` no sooner
  than ``arl`` outcomes on average (Shin, Ramdas and Rinaldo, "E-detectors", 2022): a false-alarm
  *rate*, set by ``learning.monitor_arl``, rather than a probability.

Alarm when either crosses. Simulated at target 0.9, delta 0.1 and ``arl`` 10,000
(``tests/unit/learning/test_monitor.py``): a collapse alarms within four wrong outcomes, even after
1,000 accepted ones; precision 0.8 after a median 56 outcomes; over 3,000 outcomes at precision
0.93 in 2% of runs, and at exactly 0.9 in 22% (the martingale alone in under ``delta``).

Importance weights keep the test valid when the sampling probability varies between outcomes (an
audit rate changed): ``r_i = min(1, p_0 / p_i)`` weighs each outcome by the inverse of its sampling
probability relative to the first one's, so under H0 the weighted increments keep a non-positive mean.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scipy.special import logsumexp

BET_FRACTIONS: tuple[float, ...] = (0.05, 0.1, 0.2, 0.35, 0.5, 0.7, 0.9)
"""Bets as fractions of the largest admissible one, ``1 / (1 - target)``: fixed in advance."""


class MonitorReading(BaseModel):
    """What the monitor says after the outcomes it was given."""

    model_config = ConfigDict(frozen=True)

    outcomes: int = Field(description="Outcomes read (up to and including the alarm).")
    accepted: int
    wealth: float = Field(description="The test martingale after the last outcome (1 = no evidence either way).")
    detector: float = Field(default=0.0, description="The Shiryaev-Roberts statistic after the last outcome.")
    alarm: bool = Field(description="Precision fell below target: the martingale or the detector crossed.")
    alarm_at: int | None = Field(default=None, description="Index of the outcome that raised the alarm.")
    alarm_by: str | None = Field(default=None, description="martingale or detector")
    estimate: float | None = Field(default=None, description="Weighted share accepted (ratio estimator).")


def watch(
    accepted: Sequence[bool],
    inclusion_probabilities: Sequence[float],
    target: float,
    delta: float,
    arl: float = 10_000.0,
    bets: Sequence[float] = BET_FRACTIONS,
) -> MonitorReading:
    """Run both statistics over ``accepted`` (in judgement order); stop at the first alarm.

    :param inclusion_probabilities: the probability with which each outcome was sampled.
    :param target: the precision the certificate promises.
    :param delta: the test martingale's false-alarm probability (1 - the certificate's confidence).
    :param arl: the detector's threshold: outcomes at or above target between false alarms, on average.
    """
    y = np.asarray(accepted, dtype=float)
    p = np.asarray(inclusion_probabilities, dtype=float)
    if len(y) != len(p):
        raise ValueError(f"{len(y)} outcomes but {len(p)} inclusion probabilities")
    if not 0.0 < target < 1.0 or not 0.0 < delta < 1.0 or arl <= 1.0:
        raise ValueError(f"target {target} and delta {delta} must lie in (0, 1), arl {arl} above 1")
    if len(y) == 0:
        return MonitorReading(outcomes=0, accepted=0, wealth=1.0, alarm=False)
    if (p <= 0).any() or (p > 1).any():
        raise ValueError("inclusion probabilities must lie in (0, 1]")
    weights = np.minimum(1.0, p[0] / p)
    lambdas = np.asarray(bets, dtype=float)[:, None] / (1.0 - target)
    # Each factor is >= 1 - 0.9 > 0: the bets stay below 1 / (1 - target) and weights below 1.
    factors = 1.0 + lambdas * (weights * (target - y))[None, :]
    log_wealth = logsumexp(np.cumsum(np.log(factors), axis=1), axis=0) - np.log(len(lambdas))
    detector = _shiryaev_roberts(factors).mean(axis=0)
    by_martingale = np.flatnonzero(log_wealth >= -np.log(delta))
    by_detector = np.flatnonzero(detector >= arl)
    first = [
        (int(hits[0]), name) for hits, name in ((by_martingale, "martingale"), (by_detector, "detector")) if len(hits)
    ]
    alarm_at, alarm_by = min(first) if first else (None, None)
    stop = alarm_at + 1 if alarm_at is not None else len(y)
    inverse = 1.0 / p[:stop]
    return MonitorReading(
        outcomes=stop,
        accepted=int(y[:stop].sum()),
        wealth=float(np.exp(min(log_wealth[stop - 1], 700.0))),
        detector=float(detector[stop - 1]),
        alarm=alarm_at is not None,
        alarm_at=alarm_at,
        alarm_by=alarm_by,
        estimate=float((y[:stop] * inverse).sum() / inverse.sum()),
    )


def _shiryaev_roberts(factors: np.ndarray) -> np.ndarray:
    """``R_n = (R_{n-1} + 1) * f_n`` per bet (rows), ``R_0 = 0``; capped far above any threshold."""
    out = np.empty_like(factors)
    r = np.zeros(factors.shape[0])
    for n in range(factors.shape[1]):
        r = np.minimum((r + 1.0) * factors[:, n], 1e300)
        out[:, n] = r
    return out
