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

import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field

from selective_autonomy.config import DEFAULT_TOP_K, LearningSettings
from selective_autonomy.inference.protocol import Critic, CriticInput, Policy, PolicyConfidenceCritic, PolicySignals
from selective_autonomy.inference.registry import ProcessModels, ServicePointer
from selective_autonomy.learning.certify import certify
from selective_autonomy.learning.critic_choice import fit_critic
from selective_autonomy.learning.evidence import critic_examples
from selective_autonomy.learning.splits import EvidenceSplits, split_evidence
from selective_autonomy.schemas.event_parts import ActionTier
from selective_autonomy.schemas.process import ProcessSchema
from selective_autonomy.simulator.offline import offline_copilot, with_context
from selective_autonomy.traces.format import Case


class GatePoint(BaseModel):
    threshold: float
    coverage: float
    recall: float
    precision: float | None


class CriticGate(BaseModel):
    """One critic as the gate uses it: certified on the copilot feedback, measured on the future."""

    name: str
    version: str
    certified_thresholds: dict[str, float]
    at_certified: GatePoint | None = Field(description="The critic gate at its certified thresholds, future.")
    confidence_at_equal_recall: GatePoint | None = Field(description="The policy-confidence gate, same recall.")
    curve: list[GatePoint]
    seconds: float = Field(description="Training, calibration, certification and scoring, wall time.")


class CriticEvalReport(BaseModel):
    log: str
    future_steps: int
    feedback: dict[str, int] = Field(description="Copilot answers per split: train, select, certify.")
    policy_top1: float = Field(description="Share of future steps where the policy's top-1 is what the operator did.")
    target_precision: float
    confidence: float
    critics: list[CriticGate]
    confidence_curve: list[GatePoint]
    options: dict[str, str] = Field(default_factory=dict, description="How the run was asked for (the CLI's options).")


CriticSource = Callable[[ProcessSchema, EvidenceSplits], AbstractContextManager[Critic]]
"""A critic trained on a split of the feedback (train, early stopping and calibration on select), held
for as long as the block runs (an LLM critic's server)."""


def embedded_critic(schema: ProcessSchema, parts: EvidenceSplits) -> AbstractContextManager[Critic]:
    critic = fit_critic(schema, parts.train, parts.select)
    fitted = [*parts.train, *parts.select]
    # Versioned as the learning loop versions a critic it trains, so the report names what it measured
    # (without metadata a fitted critic calls itself "untrained").
    critic.meta = critic.new_meta(
        len(parts.train),
        {},
        train_from=min(e.given_at for e in fitted),
        train_to=max(e.given_at for e in fitted),
    )
    return nullcontext(critic)


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
    critics: Mapping[str, CriticSource] | None = None,
) -> CriticEvalReport:
    """Each critic of ``critics`` (default the embedded one) trained and certified on the same copilot
    feedback, then gated on the same future steps next to the policy's own confidence."""
    models = ProcessModels(schema, policy, PolicyConfidenceCritic(), ServicePointer(policy="in-memory"))
    examples = critic_examples(with_context(list(offline_copilot(models, copilot))))
    parts = split_evidence(examples, config)

    events = [case.state_event(i) for case in future for i in range(len(case.steps))]
    recorded = [step.action for case in future for step in case.steps]
    proposals = policy.propose(events, top_k=DEFAULT_TOP_K)
    inputs, correct, confidence = [], [], []
    for event, proposal, action in zip(events, proposals, recorded, strict=True):
        top = proposal.top
        if top is None:
            continue
        spec = schema.action(top.action.action_type)
        tier = spec.tier if spec else ActionTier.critical
        inputs.append(CriticInput(event=event, action=top.action, tier=tier, signals=PolicySignals.of(proposal, 0)))
        correct.append(top.action == action)
        confidence.append(top.probability)
    right = np.asarray(correct, dtype=bool)
    conf = np.asarray(confidence)
    gates = [
        _gate(name, source, schema, parts, config, inputs, right, conf)
        for name, source in (critics or {"embedded": embedded_critic}).items()
    ]
    return CriticEvalReport(
        log=log,
        future_steps=len(events),
        feedback={"train": len(parts.train), "select": len(parts.select), "certify": len(parts.certify)},
        policy_top1=float(right.mean()) if len(right) else 0.0,
        target_precision=config.target_precision,
        confidence=config.confidence,
        critics=gates,
        confidence_curve=_curve(conf, right),
    )


def _gate(
    name: str,
    source: CriticSource,
    schema: ProcessSchema,
    parts: EvidenceSplits,
    config: LearningSettings,
    inputs: Sequence[CriticInput],
    right: np.ndarray,
    conf: np.ndarray,
) -> CriticGate:
    started = time.perf_counter()
    with source(schema, parts) as critic:
        thresholds = certify(critic, parts.certify, config).thresholds("critic-eval")
        scores = np.asarray(critic.score(inputs)) if inputs else np.zeros(0)
        version = critic.version
    limits = [
        thresholds.get(schema.process_id, item.event.business_cluster, item.tier, item.action.action_type)
        for item in inputs
    ]
    # Per-key thresholds as one gate: the score's margin over its key's threshold, passed at >= 0.
    margins = scores - np.asarray([np.inf if limit is None else limit for limit in limits], dtype=float)
    at_certified = _gate_point(margins, right, 0.0) if thresholds.values else None
    return CriticGate(
        name=name,
        version=version,
        certified_thresholds=dict(thresholds.values),
        at_certified=at_certified,
        confidence_at_equal_recall=_at_recall(conf, right, at_certified.recall) if at_certified else None,
        curve=_curve(scores, right),
        seconds=round(time.perf_counter() - started, 1),
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
    curves = [(f"{gate.name} critic gate", gate.curve) for gate in report.critics]
    for label, curve in [*curves, ("policy-confidence gate", report.confidence_curve)]:
        points = [(p.recall, p.precision) for p in curve if p.precision is not None]
        ax.plot([r for r, _ in points], [q for _, q in points], marker=".", label=label)
    for gate in report.critics:
        if gate.at_certified is not None and gate.at_certified.precision is not None:
            ax.scatter(
                [gate.at_certified.recall],
                [gate.at_certified.precision],
                zorder=3,
                label=f"{gate.name}: certified thresholds ({len(gate.certified_thresholds)} keys)",
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
