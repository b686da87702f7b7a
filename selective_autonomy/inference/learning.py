"""The learning loop of one process: feedback in the store -> a retrained critic, recalibrated
thresholds, an updated policy, and stage changes, published as a new service pointer.

A new critic or policy version goes into service only when its offline evaluation on the newest
held-out feedback is no worse than the version in service; thresholds are always recertified
for the critic in service, so a cluster whose certification lapses drops back to copilot.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from pydantic import BaseModel, Field

from selective_autonomy.agents.stages import StageDecision, StageEvidence, StageRules, next_stage
from selective_autonomy.config import LearningSettings
from selective_autonomy.inference.artefact import new_version
from selective_autonomy.inference.calibration import CalibrationReport, ScoredFeedback, calibrate_thresholds
from selective_autonomy.inference.critic import CriticConfig, EmbeddedCritic, train_critic
from selective_autonomy.inference.protocol import Critic, Policy, PolicySignals
from selective_autonomy.inference.registry import ModelRegistry, ProcessModels, ServicePointer
from selective_autonomy.schemas.events import Stage, StageChanged, Verdict
from selective_autonomy.schemas.process import ProcessSchema
from selective_autonomy.store.datasets import CriticExample, PolicyExample, critic_examples, policy_examples
from selective_autonomy.store.models import FeedbackWithContext, ModelKind
from selective_autonomy.store.repository import FeedbackStore

log = logging.getLogger(__name__)


def stage_rules(config: LearningSettings) -> StageRules:
    return StageRules(
        target_precision=config.target_precision,
        min_certified_coverage=config.min_certified_coverage,
        min_audits=config.min_audits,
        drift_tolerance=config.drift_tolerance,
        min_drift_samples=config.min_drift_samples,
    )


class LearningReport(BaseModel):
    process_id: str
    feedback: int
    critic_examples: int
    critic_version: str
    critic_promoted: bool
    policy_version: str
    policy_promoted: bool
    calibration: CalibrationReport | None = None
    stage_changes: list[StageChanged] = Field(default_factory=list)
    pointer_revision: int = 0
    notes: list[str] = Field(default_factory=list)


@dataclass
class FeedbackSplits:
    train: list[CriticExample] = field(default_factory=list)
    holdout: list[CriticExample] = field(default_factory=list)
    calibration: list[CriticExample] = field(default_factory=list)


def split_feedback(examples: Sequence[CriticExample], config: LearningSettings) -> FeedbackSplits:
    """Chronological: train on the oldest, early-stop and Platt-scale on the next, certify on the newest."""
    n = len(examples)
    n_cal = int(n * config.calibration_fraction)
    n_hold = int(n * config.holdout_fraction)
    n_train = n - n_cal - n_hold
    return FeedbackSplits(
        list(examples[:n_train]), list(examples[n_train : n_train + n_hold]), list(examples[n_train + n_hold :])
    )


def _scored(critic: Critic, examples: Sequence[CriticExample]) -> list[ScoredFeedback]:
    scores = critic.score([e.critic_input() for e in examples]) if examples else []
    return [
        ScoredFeedback(
            process_id=e.process_id, business_cluster=e.business_cluster, tier=e.tier, score=s, accepted=e.label
        )
        for e, s in zip(examples, scores, strict=True)
    ]


def fit_critic(schema: ProcessSchema, splits: FeedbackSplits, config: CriticConfig | None = None) -> EmbeddedCritic:
    """A critic trained on the oldest feedback, early-stopped and Platt-scaled on the next (``holdout``)."""
    return train_critic(
        schema,
        [e.critic_input() for e in splits.train],
        [e.label for e in splits.train],
        [e.critic_input() for e in splits.holdout],
        [e.label for e in splits.holdout],
        config,
    )


def certify(critic: Critic, calibration: Sequence[CriticExample], config: LearningSettings) -> CalibrationReport:
    """Risk-controlled thresholds for ``critic`` from the newest feedback (per process, cluster and tier)."""
    return calibrate_thresholds(
        _scored(critic, calibration), config.target_precision, config.confidence, config.min_calibration_samples
    )


def relabelled(examples: Sequence[CriticExample], policy: Policy, schema: ProcessSchema) -> list[CriticExample]:
    """The examples as the new ``policy`` would have suggested them, labelled by what the operator did.

    An accept makes the suggestion the right action; a correction makes the operator's action the
    right one; an acceptable alternative makes both right. A new suggestion is labelled accepted
    when it is one of those, else corrected. Without this, thresholds certified on the old
    policy's suggestions would be applied to the new policy's.
    """
    out: list[CriticExample] = []
    for start in range(0, len(examples), 1024):
        chunk = examples[start : start + 1024]
        for example, proposal in zip(chunk, policy.propose([e.event for e in chunk]), strict=True):
            top = proposal.top
            if top is None:
                continue
            right = [example.operator_action or example.action]
            if example.verdict is not Verdict.corrected:
                right.append(example.action)
            label = top.action in right
            spec = schema.action(top.action.action_type)
            out.append(
                example.model_copy(
                    update={
                        "action": top.action,
                        "candidates": proposal.candidates,
                        "signals": PolicySignals.of(proposal, 0),
                        "policy_probability": top.probability,
                        "policy_version": proposal.policy_version,
                        "tier": spec.tier if spec else example.tier,
                        "label": label,
                        "verdict": Verdict.accepted if label else Verdict.corrected,
                        "operator_action": None if label else (example.operator_action or example.action),
                    }
                )
            )
    return out


def _accuracy(policy: Policy, examples: Sequence[PolicyExample]) -> float:
    if not examples:
        return 0.0
    proposals = policy.propose([e.event for e in examples], top_k=1)
    hits = sum(1 for e, p in zip(examples, proposals, strict=True) if p.top is not None and p.top.action == e.action)
    return hits / len(examples)


class LearningLoop:
    def __init__(self, registry: ModelRegistry, store: FeedbackStore, config: LearningSettings | None = None) -> None:
        self.registry = registry
        self.store = store
        self.config = config or LearningSettings()

    def run(self, process_id: str) -> LearningReport:
        models = self.registry.load(process_id)
        rows = self.store.feedback_with_context(process_id=process_id)
        examples = critic_examples(row for row in rows if not row.feedback.is_audit)
        notes: list[str] = []
        # The policy first: thresholds must be certified for the (policy, critic) pair in service.
        policy_path, policy_promoted, policy = self._policy(models, rows, notes)
        if policy_promoted:
            examples = relabelled(examples, policy, models.schema)
            models = ProcessModels(models.schema, policy, models.critic, models.pointer)
        splits = split_feedback(examples, self.config)

        critic, critic_path, critic_promoted = self._critic(models, splits, notes)
        calibration = None
        if len(splits.calibration) >= self.config.min_calibration_samples:
            calibration = certify(critic, splits.calibration, self.config)
        else:
            notes.append(f"{len(splits.calibration)} calibration examples: too few to certify thresholds")

        thresholds_version = new_version("thresholds", f"{critic.version}:{len(splits.calibration)}")
        thresholds = calibration.thresholds(thresholds_version) if calibration else models.pointer.thresholds
        stages, changes = self._stages(models, rows, calibration, thresholds_version, examples)
        pointer = ServicePointer(
            policy=policy_path,
            critic=critic_path,
            thresholds=thresholds,
            stages=stages,
            default_stage=models.pointer.default_stage,
            reference_acceptance=self._reference_acceptance(models.pointer, splits, changes),
        )
        published = self.registry.publish(process_id, pointer)
        if calibration is not None:
            self.store.record_model_version(
                ModelKind.thresholds,
                process_id,
                thresholds_version,
                "current.json",
                {"certified_coverage": calibration.certified_coverage()},
                promoted=True,
            )
        for change in changes:
            self.store.record_stage_transition(
                process_id, change.business_cluster, change.to_stage, reason=change.reason
            )
        return LearningReport(
            process_id=process_id,
            feedback=len(rows),
            critic_examples=len(examples),
            critic_version=critic.version,
            critic_promoted=critic_promoted,
            policy_version=models.policy.version,
            policy_promoted=policy_promoted,
            calibration=calibration,
            stage_changes=changes,
            pointer_revision=published.revision,
            notes=notes,
        )

    def _critic(
        self, models: ProcessModels, splits: FeedbackSplits, notes: list[str]
    ) -> tuple[Critic, str | None, bool]:
        current_path = models.pointer.critic
        if len(splits.train) < self.config.min_critic_examples or not splits.calibration:
            notes.append(f"{len(splits.train)} critic training examples: keeping {models.critic.version}")
            return models.critic, current_path, False
        candidate = fit_critic(models.schema, splits, CriticConfig())
        new_cov = self._coverage(candidate, splits.calibration)
        old_cov = self._coverage(models.critic, splits.calibration)
        if new_cov < old_cov:
            notes.append(f"new critic certifies {new_cov:.1%} < {old_cov:.1%} in service: not promoted")
            return models.critic, current_path, False
        meta = candidate.new_meta(len(splits.train), {"certified_coverage": new_cov, "previous_coverage": old_cov})
        path = f"critic/{meta.version}"
        candidate.save(self.registry.process_dir(models.schema.process_id) / path, meta)
        self.store.record_model_version(
            ModelKind.critic, models.schema.process_id, meta.version, path, dict(meta.metrics), promoted=True
        )
        return candidate, path, True

    def _coverage(self, critic: Critic, calibration: Sequence[CriticExample]) -> float:
        return certify(critic, calibration, self.config).certified_coverage()

    def _policy(
        self, models: ProcessModels, rows: Sequence[FeedbackWithContext], notes: list[str]
    ) -> tuple[str | None, bool, Policy]:
        """Fold operator-endorsed actions into the policy when it supports incremental updates."""
        current = models.pointer.policy
        examples = policy_examples(rows)
        update = getattr(models.policy, "updated_with", None)
        if update is None or len(examples) < 20:
            return current, False, models.policy
        cut = int(len(examples) * (1 - self.config.holdout_fraction))
        candidate = update(examples[:cut])
        new_acc, old_acc = _accuracy(candidate, examples[cut:]), _accuracy(models.policy, examples[cut:])
        if new_acc < old_acc:
            notes.append(f"updated policy top-1 {new_acc:.3f} < {old_acc:.3f} in service: not promoted")
            return current, False, models.policy
        meta = candidate.meta.model_copy(update={"metrics": {"feedback_top1": new_acc, "previous_top1": old_acc}})
        path = f"policy/{meta.version}"
        candidate.save(self.registry.process_dir(models.schema.process_id) / path, meta)
        self.store.record_model_version(
            ModelKind.policy, models.schema.process_id, meta.version, path, dict(meta.metrics), promoted=True
        )
        return path, True, candidate

    def _stages(
        self,
        models: ProcessModels,
        rows: Sequence[FeedbackWithContext],
        calibration: CalibrationReport | None,
        thresholds_version: str,
        examples: Sequence[CriticExample],
    ) -> tuple[dict[str, Stage], list[StageChanged]]:
        pointer = models.pointer
        stages: dict[str, Stage] = {}
        changes: list[StageChanged] = []
        for cluster in models.schema.business_clusters:
            current = pointer.stage(cluster.id)
            evidence = self._evidence(models, cluster.id, rows, calibration, examples)
            decision: StageDecision | None = next_stage(current, evidence, stage_rules(self.config))
            stages[cluster.id] = decision.stage if decision else current
            if decision is not None:
                changes.append(
                    StageChanged(
                        process_id=models.schema.process_id,
                        business_cluster=cluster.id,
                        from_stage=current,
                        to_stage=decision.stage,
                        reason=decision.reason,
                        certified_coverage=evidence.certified_coverage,
                        rolling_precision=evidence.rolling_precision,
                        thresholds_version=thresholds_version,
                    )
                )
        return stages, changes

    def _evidence(
        self,
        models: ProcessModels,
        cluster: str,
        rows: Sequence[FeedbackWithContext],
        calibration: CalibrationReport | None,
        examples: Sequence[CriticExample],
    ) -> StageEvidence:
        prefix = f"{models.schema.process_id}/{cluster}/"
        results = [r for r in (calibration.results if calibration else []) if r.key.startswith(prefix)]
        total = sum(r.samples for r in results)
        covered = sum(r.coverage * r.samples for r in results if r.threshold is not None)
        # Only audits of executions under the current promotion count: after a demotion and a
        # recertification, the new thresholds are judged on what they execute, not on the old ones.
        promoted = [
            t.at for t in self.store.stage_history(models.schema.process_id, cluster) if t.to_stage is Stage.selective
        ]
        since = promoted[-1] if promoted else None
        audits = [
            r.feedback
            for r in rows
            if r.feedback.is_audit
            and r.feedback.business_cluster == cluster
            and (since is None or r.received_at >= since)
        ]
        audits = audits[-self.config.audit_window :]
        accepted = sum(1 for a in audits if a.verdict is not Verdict.corrected)
        in_cluster = [e for e in examples if e.business_cluster == cluster]
        recent = in_cluster[-self.config.audit_window :]
        return StageEvidence(
            policy_in_service=models.pointer.policy is not None,
            certified=any(r.threshold is not None for r in results),
            certified_coverage=covered / total if total else 0.0,
            audited=len(audits),
            rolling_precision=accepted / len(audits) if audits else None,
            reference_acceptance=models.pointer.reference_acceptance.get(cluster),
            recent_acceptance=sum(e.label for e in recent) / len(recent) if recent else None,
            recent_samples=len(recent),
        )

    @staticmethod
    def _reference_acceptance(
        pointer: ServicePointer, splits: FeedbackSplits, changes: Sequence[StageChanged]
    ) -> dict[str, float]:
        """Acceptance rate per cluster at the moment it was promoted to selective (the drift baseline)."""
        reference = dict(pointer.reference_acceptance)
        for change in changes:
            if change.to_stage is Stage.selective:
                labels = [e.label for e in splits.calibration if e.business_cluster == change.business_cluster]
                if labels:
                    reference[change.business_cluster] = sum(labels) / len(labels)
            elif change.to_stage is Stage.copilot:
                reference.pop(change.business_cluster, None)
        return reference
