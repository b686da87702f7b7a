"""`selauto eval critic`: the learned critic gate against the policy-confidence gate.

On one log, split chronologically: the policy is trained on the past, the copilot stage runs
offline over the present (simulated operators answer every suggestion), the critic is trained and
its thresholds (one per action type) certified on that feedback as the learning loop splits it,
and both gates are then measured on the future: precision of the steps each would execute,
compared at equal recall (the confidence gate's threshold is chosen to pass as many correct steps
as the critic gate does), plus the coverage at the certified thresholds and the precision actually
realised there.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field

from selective_autonomy.config import DEFAULT_TOP_K, LearningSettings
from selective_autonomy.inference.protocol import CriticInput, Policy, PolicyConfidenceCritic, PolicySignals
from selective_autonomy.inference.registry import ProcessModels, ServicePointer
from selective_autonomy.learning.certify import certify
from selective_autonomy.learning.critic_choice import fit_critic
from selective_autonomy.learning.evidence import critic_examples
from selective_autonomy.learning.splits import split_evidence
from selective_autonomy.schemas.event_parts import ActionTier
from selective_autonomy.schemas.process import ProcessSchema
from selective_autonomy.simulator.offline import offline_copilot, with_context
from selective_autonomy.traces.format import Case


class GatePoint(BaseModel):
    threshold: float
    coverage: float
    recall: float
    precision: float | None


class CriticEvalReport(BaseModel):
    log: str
    future_steps: int
    policy_top1: float = Field(description="Share of future steps where the policy's top-1 is what the operator did.")
    critic_version: str
    certified_thresholds: dict[str, float]
    target_precision: float
    confidence: float
    critic_at_certified: GatePoint | None = Field(description="The critic gate at its certified thresholds, future.")
    confidence_at_equal_recall: GatePoint | None = Field(description="The policy-confidence gate, same recall.")
    critic_curve: list[GatePoint]
    confidence_curve: list[GatePoint]


def _gate_point(scores: np.ndarray, correct: np.ndarray, threshold: float) -> GatePoint:
    passed = scores >= threshold
    n_passed = int(passed.sum())
    total_correct = int(correct.sum())
    hits = int((passed & correct).sum())
    return GatePoint(
        threshold=float(threshold),
        coverage=n_passed / len(scores) if len(scores) else 0.0,
        recall=hits / total_correct if total_correct else 0.0,
        precision=hits / n_passed if n_passed else None,
    )


def _curve(scores: np.ndarray, correct: np.ndarray, points: int = 41) -> list[GatePoint]:
    if not len(scores):
        return []
    thresholds = np.unique(np.quantile(scores, np.linspace(0.0, 1.0, points)))
    return [_gate_point(scores, correct, float(t)) for t in thresholds]


def _at_recall(scores: np.ndarray, correct: np.ndarray, recall: float) -> GatePoint | None:
    """The highest threshold whose recall is at least ``recall`` (so precision is compared fairly)."""
    best = None
    for threshold in np.unique(scores)[::-1]:
        point = _gate_point(scores, correct, float(threshold))
        if point.recall >= recall:
            best = point
            break
    return best


def evaluate_critic(
    schema: ProcessSchema,
    policy: Policy,
    copilot: Sequence[Case],
    future: Sequence[Case],
    config: LearningSettings,
    log: str = "",
) -> CriticEvalReport:
    models = ProcessModels(schema, policy, PolicyConfidenceCritic(), ServicePointer(policy="in-memory"))
    examples = critic_examples(with_context(list(offline_copilot(models, copilot))))
    parts = split_evidence(examples, config)
    critic = fit_critic(schema, parts.train, parts.select)
    thresholds = certify(critic, parts.certify, config).thresholds("critic-eval")

    events = [case.state_event(i) for case in future for i in range(len(case.steps))]
    recorded = [step.action for case in future for step in case.steps]
    proposals = policy.propose(events, top_k=DEFAULT_TOP_K)
    inputs, correct, confidence, limits = [], [], [], []
    for event, proposal, action in zip(events, proposals, recorded, strict=True):
        top = proposal.top
        if top is None:
            continue
        spec = schema.action(top.action.action_type)
        inputs.append(
            CriticInput(
                event=event,
                action=top.action,
                tier=spec.tier if spec else ActionTier.critical,
                signals=PolicySignals.of(proposal, 0),
            )
        )
        correct.append(top.action == action)
        confidence.append(top.probability)
        limit = thresholds.get(schema.process_id, event.business_cluster, inputs[-1].tier, top.action.action_type)
        limits.append(np.inf if limit is None else limit)
    scores = np.asarray(critic.score(inputs)) if inputs else np.zeros(0)
    right = np.asarray(correct, dtype=bool)
    conf = np.asarray(confidence)
    # Per-key thresholds as one gate: the score's margin over its key's threshold, passed at >= 0.
    margins = scores - np.asarray(limits, dtype=float)
    at_certified = _gate_point(margins, right, 0.0) if thresholds.values else None
    equal = _at_recall(conf, right, at_certified.recall) if at_certified is not None else None
    return CriticEvalReport(
        log=log,
        future_steps=len(events),
        policy_top1=float(right.mean()) if len(right) else 0.0,
        critic_version=critic.version,
        certified_thresholds=dict(thresholds.values),
        target_precision=config.target_precision,
        confidence=config.confidence,
        critic_at_certified=at_certified,
        confidence_at_equal_recall=equal,
        critic_curve=_curve(scores, right),
        confidence_curve=_curve(conf, right),
    )


def write_critic_eval(report: CriticEvalReport, out_dir: Path) -> tuple[Path, Path]:
    """``critic_eval_<log>.json`` and a precision-recall plot of both gates."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"critic_eval_{report.log}"
    json_path, png_path = out_dir / f"{stem}.json", out_dir / f"{stem}.png"
    json_path.write_text(report.model_dump_json(indent=2))
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for label, curve in (("critic gate", report.critic_curve), ("policy-confidence gate", report.confidence_curve)):
        points = [(p.recall, p.precision) for p in curve if p.precision is not None]
        ax.plot([r for r, _ in points], [q for _, q in points], marker=".", label=label)
    if report.critic_at_certified is not None and report.critic_at_certified.precision is not None:
        ax.scatter(
            [report.critic_at_certified.recall],
            [report.critic_at_certified.precision],
            color="black",
            zorder=3,
            label=f"certified thresholds ({len(report.certified_thresholds)} action types)",
        )
    ax.axhline(report.target_precision, color="grey", linestyle="--", linewidth=1, label="target precision")
    ax.set_xlabel("recall (correct steps executed / all correct top-1 steps)")
    ax.set_ylabel("precision of executed steps")
    ax.set_title(f"Critic vs policy confidence on the future split ({report.log})")
    ax.legend(loc="lower left", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(png_path, dpi=120)
    plt.close(fig)
    return json_path, png_path
