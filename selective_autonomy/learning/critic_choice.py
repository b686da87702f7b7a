"""Which critic the next certificate is for: chosen on evidence the certificate does not use.

Candidates: the policy's own probability (always: it needs no training, so it is the cold-start
critic too), the critic in service (if nothing it was fitted on is in the certifying set) and a
critic newly trained on the training split (early-stopped and Platt-scaled on the selection split).
The one whose thresholds would execute the most selection-split steps at the target precision
wins; ties keep the critic in service, then the simplest.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from selective_autonomy.config import LearningSettings
from selective_autonomy.inference.critic import CriticConfig, EmbeddedCritic, train_critic
from selective_autonomy.inference.protocol import Critic, PolicyConfidenceCritic
from selective_autonomy.learning.calibration import DEFAULT_GRID
from selective_autonomy.learning.evidence import CriticExample, EvidenceSource
from selective_autonomy.learning.splits import EvidenceSplits
from selective_autonomy.schemas.event_parts import ActionTier
from selective_autonomy.schemas.process import ProcessSchema

MIN_KEY_SAMPLES = 20
"""Selection-split examples a key needs to count in the comparison."""


@dataclass(frozen=True)
class CriticChoice:
    critic: Critic
    name: str = field(metadata={"doc": "confidence, in_service or new"})
    trained: EmbeddedCritic | None = field(default=None, metadata={"doc": "the new critic, when it won"})
    selection_coverage: dict[str, float] = field(default_factory=dict)
    fitted_until: datetime | None = None
    compared: bool = field(default=False, metadata={"doc": "chosen among several on the selection split"})


def fit_critic(
    schema: ProcessSchema,
    train: Sequence[CriticExample],
    select: Sequence[CriticExample],
    config: CriticConfig | None = None,
) -> EmbeddedCritic:
    """A critic trained on ``train``, early-stopped and Platt-scaled on ``select``."""
    return train_critic(
        schema,
        [e.critic_input() for e in train],
        [e.label for e in train],
        [e.critic_input() for e in select],
        [e.label for e in select],
        config,
    )


def empirical_coverage(critic: Critic, examples: Sequence[CriticExample], target: float) -> float:
    """Share of ``examples`` executed when each (cluster, tier, action) key gets the lowest grid
    threshold whose empirical precision there reaches ``target`` (no test: a comparison, not a
    certificate)."""
    groups: dict[tuple[str, ActionTier, str], list[int]] = defaultdict(list)
    for i, example in enumerate(examples):
        if example.tier is not ActionTier.approval_required:
            groups[(example.business_cluster, example.tier, example.action.action_type)].append(i)
    if not examples:
        return 0.0
    scores = np.asarray(critic.score([e.critic_input() for e in examples]), dtype=float)
    labels = np.asarray([e.label for e in examples], dtype=bool)
    executed = 0
    for indices in groups.values():
        if len(indices) < MIN_KEY_SAMPLES:
            continue
        s, y = scores[indices], labels[indices]
        best = 0
        for threshold in DEFAULT_GRID:  # strictest first
            passed = s >= threshold
            if passed.any() and y[passed].mean() >= target:
                best = int(passed.sum())
            elif passed.any():
                break
        executed += best
    return executed / len(examples)


def choose_critic(
    schema: ProcessSchema,
    in_service: Critic,
    in_service_fitted_until: datetime | None,
    splits: EvidenceSplits,
    config: LearningSettings,
    critic_config: CriticConfig | None = None,
) -> tuple[CriticChoice, list[str]]:
    """The critic to certify, and notes on why."""
    notes: list[str] = []
    confidence = CriticChoice(PolicyConfidenceCritic(), "confidence")
    if config.critic == "confidence":
        return confidence, ["critic: policy confidence (learning.critic = confidence)"]
    candidates = [confidence]
    certify_from = min((e.given_at for e in splits.certify), default=None)
    if not isinstance(in_service, PolicyConfidenceCritic):
        if in_service_fitted_until is not None and certify_from is not None and in_service_fitted_until >= certify_from:
            notes.append(
                f"critic {in_service.version} was fitted on evidence the certificate would use: not a candidate"
            )
        else:
            candidates.insert(0, CriticChoice(in_service, "in_service", fitted_until=in_service_fitted_until))
    if len(splits.train) >= config.min_critic_examples and splits.select:
        trained = fit_critic(schema, splits.train, splits.select, critic_config)
        # Only unbiased examples can ever certify, so only they must stay out of a later certificate.
        fitted_until = max(
            (e.given_at for e in (*splits.train, *splits.select) if e.source is EvidenceSource.exploration),
            default=None,
        )
        candidates.append(CriticChoice(trained, "new", trained=trained, fitted_until=fitted_until))
    else:
        notes.append(f"{len(splits.train)} training examples: no new critic (needs {config.min_critic_examples})")
    if len(candidates) == 1 or not splits.select:
        return candidates[0], notes
    coverage = {c.name: empirical_coverage(c.critic, splits.select, config.target_precision) for c in candidates}
    best = max(candidates, key=lambda c: coverage[c.name])  # max keeps the first of equals: in service first
    notes.append(
        "critic chosen on the selection split: "
        + ", ".join(f"{name} {value:.1%}" for name, value in coverage.items())
        + f" -> {best.name}"
    )
    return CriticChoice(best.critic, best.name, best.trained, coverage, best.fitted_until, compared=True), notes
