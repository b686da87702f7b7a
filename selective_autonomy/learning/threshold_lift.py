"""An online raise of a cluster's certified thresholds, from the judged steps that ran since.

A certificate is a fixed-sample statement about data like its calibration window; under drift its
precision can sink slowly, too slowly for the monitor to prove it (BPI 2012 W at target 0.95: 92.4%
over the 381 judged unattended steps of a run, no alarm, since a 3-point drop needs several hundred
judged steps at a 4% audit rate; docs/guarantee.md). So the thresholds move with every judgement,
in the style of adaptive conformal inference (Gibbs and Candès 2021, arXiv 2106.00170):

    lift_0 = 0,   lift_n = max(0, lift_{n-1} + step * r_n * (target - y_n))

where ``y_n`` is 1 when the n-th judged unattended step was accepted and ``r_n`` its importance
weight (as in :mod:`monitor`). Each rejection raises every threshold of the cluster by
``step * target``, each acceptance lowers it by ``step * (1 - target)``, never below the certified
value: the lift only ever makes the gate stricter than the certificate.

What it guarantees, whatever the drift (a deterministic bound, no assumption on the data): the
update never loses height, ``lift_N >= step * sum_n r_n (target - y_n)``, so over the ``N`` judged
steps since the certificate the weighted share accepted is at least ``target - lift_N / (step *
sum_n r_n)``. Once the thresholds pass 1 nothing runs and no new judgement arrives, so the lift
stays bounded (by 1 plus what was in flight) and the shortfall shrinks as ``1 / N``: a long run of
judged steps is held at the target, not only in expectation. Recertification resets the lift with
the certificate.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def threshold_lift(
    accepted: Sequence[bool], inclusion_probabilities: Sequence[float], target: float, step: float
) -> float:
    """The lift after the judged unattended steps ``accepted`` (in judgement order); 0 with ``step`` 0.

    :param inclusion_probabilities: the probability with which each judged step was sampled.
    :param target: the certified precision.
    :param step: how far one judgement moves the thresholds (``learning.threshold_step``).
    """
    if len(accepted) != len(inclusion_probabilities):
        raise ValueError(f"{len(accepted)} outcomes but {len(inclusion_probabilities)} inclusion probabilities")
    if step < 0 or not 0.0 < target < 1.0:
        raise ValueError(f"step {step} must be >= 0 and target {target} in (0, 1)")
    if step == 0 or not accepted:
        return 0.0
    p = np.asarray(inclusion_probabilities, dtype=float)
    if (p <= 0).any() or (p > 1).any():
        raise ValueError("inclusion probabilities must lie in (0, 1]")
    # As the monitor weighs them: a judgement sampled more often than the first one stands for
    # fewer unattended steps, so it moves the thresholds less.
    weights = np.minimum(1.0, p[0] / p)
    lift = 0.0
    for y, weight in zip(accepted, weights, strict=True):
        lift = max(0.0, lift + step * float(weight) * (target - float(y)))
    return lift
