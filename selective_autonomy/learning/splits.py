"""How one run's evidence is divided, so that nothing that certifies also chose or trained.

The unbiased evidence (``exploration``: labelled whatever its score) is ordered by feedback time
and cut in three, newest last:

* ``certify``: the newest ``calibration_fraction``: the Learn-Then-Test calibration set, the most
  like the future and used for nothing else;
* ``select``: the ``holdout_fraction`` before it: early stopping and Platt scaling of a new critic,
  and the choice among candidate critics;
* the rest, with every selective-stage deferral, trains the critic.

Choosing the critic by the coverage it certifies on the certifying set itself (what the loop did
before) is selection on the test set: it voids the fixed-sample guarantee.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from selective_autonomy.config import LearningSettings
from selective_autonomy.learning.evidence import CriticExample, EvidenceSource


@dataclass(frozen=True)
class EvidenceSplits:
    train: list[CriticExample] = field(default_factory=list)
    select: list[CriticExample] = field(default_factory=list)
    certify: list[CriticExample] = field(default_factory=list)

    @property
    def unbiased(self) -> list[CriticExample]:
        """Every exploration example, oldest first (what an untrained critic may certify on)."""
        return sorted(
            [e for e in (*self.train, *self.select, *self.certify) if e.source is EvidenceSource.exploration],
            key=_order,
        )


def _order(example: CriticExample) -> tuple[datetime, str]:
    return example.given_at, example.feedback_id


def split_evidence(examples: Sequence[CriticExample], config: LearningSettings) -> EvidenceSplits:
    """Chronological: the newest unbiased examples certify, the ones before them select, the rest train."""
    ordered = sorted(examples, key=_order)
    unbiased = [e for e in ordered if e.source is EvidenceSource.exploration]
    n_certify = int(len(unbiased) * config.calibration_fraction)
    n_select = int(len(unbiased) * config.holdout_fraction)
    certify = unbiased[len(unbiased) - n_certify :] if n_certify else []
    select = unbiased[len(unbiased) - n_certify - n_select : len(unbiased) - n_certify] if n_select else []
    held = {e.feedback_id for e in (*certify, *select)}
    return EvidenceSplits(train=[e for e in ordered if e.feedback_id not in held], select=select, certify=certify)
