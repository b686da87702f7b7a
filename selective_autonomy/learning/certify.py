"""From a critic and unbiased evidence to certified thresholds and the certificates behind them."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence

from selective_autonomy.config import LearningSettings
from selective_autonomy.inference.certificate import Certificate, CertifiedKey
from selective_autonomy.inference.protocol import Critic
from selective_autonomy.inference.thresholds import ThresholdKey
from selective_autonomy.learning.calibration import CalibrationReport, ScoredFeedback, calibrate_thresholds
from selective_autonomy.learning.evidence import CriticExample


def key_of(example: CriticExample) -> str:
    return ThresholdKey(
        process_id=example.process_id,
        business_cluster=example.business_cluster,
        tier=example.tier,
        action_type=example.action.action_type,
    ).text()


def scored(critic: Critic, examples: Sequence[CriticExample]) -> list[ScoredFeedback]:
    scores = critic.score([e.critic_input() for e in examples]) if examples else []
    return [
        ScoredFeedback(
            process_id=e.process_id,
            business_cluster=e.business_cluster,
            tier=e.tier,
            action_type=e.action.action_type,
            score=s,
            accepted=e.label,
        )
        for e, s in zip(examples, scores, strict=True)
    ]


def certify(critic: Critic, examples: Sequence[CriticExample], config: LearningSettings) -> CalibrationReport:
    """Risk-controlled thresholds for ``critic`` per (process, cluster, tier, action type)."""
    return calibrate_thresholds(
        scored(critic, examples),
        config.target_precision,
        config.confidence,
        config.min_calibration_samples,
        blocks=config.certify_blocks,
    )


def certificates(
    report: CalibrationReport,
    examples: Sequence[CriticExample],
    critic_version: str,
    policy_version: str,
    config: LearningSettings,
) -> dict[str, Certificate]:
    """One certificate per cluster with at least one certified key, from the evidence that earned it."""
    by_cluster: dict[str, list[CriticExample]] = defaultdict(list)
    for example in examples:
        by_cluster[example.business_cluster].append(example)
    max_step: dict[str, int] = {}
    for example in examples:
        key = key_of(example)
        max_step[key] = max(max_step.get(key, 0), example.step_index)
    results = {r.key: r for r in report.results}
    out: dict[str, Certificate] = {}
    for cluster, items in by_cluster.items():
        keys = {
            key_of(e): results[key_of(e)]
            for e in items
            if key_of(e) in results and results[key_of(e)].threshold is not None
        }
        if not keys:
            continue
        out[cluster] = Certificate(
            business_cluster=cluster,
            issued_at=max(e.given_at for e in items),
            evidence_from=min(e.given_at for e in items),
            received_to=max(e.received_at for e in items),
            critic_version=critic_version,
            policy_version=policy_version,
            target_precision=config.target_precision,
            confidence=config.confidence,
            coverage=report.certified_coverage(f"{items[0].process_id}/{cluster}/"),
            keys={
                key: CertifiedKey(
                    threshold=float(result.threshold),  # type: ignore[arg-type]
                    samples=result.samples,
                    coverage=result.coverage,
                    empirical_precision=result.empirical_precision,
                    lower_bound=result.lower_bound,
                    max_step=max_step[key],
                )
                for key, result in sorted(keys.items())
            },
            judged_actions=dict(sorted(Counter(e.action.action_type for e in items).items())),
            min_judgements=config.min_judgements,
        )
    return out
