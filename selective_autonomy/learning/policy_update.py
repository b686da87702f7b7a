"""The policy learns from corrections: operator-endorsed actions folded into a new policy version,
promoted only when it is no worse on the newest feedback, and the evidence relabelled for it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from selective_autonomy.config import LearningSettings
from selective_autonomy.inference.protocol import Policy, PolicySignals
from selective_autonomy.learning.evidence import CriticExample, EvidenceSource, PolicyExample
from selective_autonomy.schemas.event_parts import Verdict
from selective_autonomy.schemas.process import ProcessSchema

MIN_POLICY_EXAMPLES = 20


@dataclass(frozen=True)
class PolicyUpdate:
    policy: Any = field(metadata={"doc": "the new policy (has save() and meta)"})
    top1: float
    previous_top1: float


def top1(policy: Policy, examples: Sequence[PolicyExample]) -> float:
    if not examples:
        return 0.0
    proposals = policy.propose([e.event for e in examples], top_k=1)
    hits = sum(1 for e, p in zip(examples, proposals, strict=True) if p.top is not None and p.top.action == e.action)
    return hits / len(examples)


def evaluated_to(policy: Policy) -> datetime | None:
    """The newest answer ``policy`` was trained or chosen on (None: it learned from recorded cases only)."""
    return getattr(getattr(policy, "meta", None), "evaluated_to", None)


def update_policy(
    policy: Policy, examples: Sequence[PolicyExample], config: LearningSettings, before: datetime | None = None
) -> tuple[PolicyUpdate | None, list[str]]:
    """A new version trained on the endorsed actions the policy has not learned from yet (states
    newer than its ``meta.train_to``; folding the same ones in again would count them twice), if
    it supports incremental updates, there are at least ``policy_update_examples`` of them, and the
    new version is no worse on the newest unbiased ones.

    :param before: only answers given before this are used, to train or to choose: the
        certificate for the new version is earned on the answers from here on, which it must never
        have seen (a policy fitted to its own calibration steps looks better there than it is; its
        ``meta.evaluated_to`` records the newest answer it saw, and certification starts after it).
    """
    update = getattr(policy, "updated_with", None)
    if update is None:
        return None, []
    learned_to = getattr(getattr(policy, "meta", None), "train_to", None)
    fresh = sorted(
        (
            e
            for e in examples
            if (learned_to is None or e.event.timestamp > learned_to) and (before is None or e.given_at < before)
        ),
        key=lambda e: (e.event.timestamp, e.feedback_id),
    )
    if len(fresh) < max(MIN_POLICY_EXAMPLES, config.policy_update_examples):
        return None, [f"{len(fresh)} endorsed actions the policy has not learned from: no update"]
    cut = int(len(fresh) * (1 - config.holdout_fraction))
    # Judged on unbiased evidence only: selective-stage deferrals are the steps the old policy and
    # critic were least sure of, a sample tilted against the policy in service.
    judged = [e for e in fresh[cut:] if e.source is EvidenceSource.exploration]
    if len(judged) < MIN_POLICY_EXAMPLES:
        return None, [f"{len(judged)} unbiased endorsed actions to compare policies on: no update"]
    candidate = update(fresh[:cut])
    new, old = top1(candidate, judged), top1(policy, judged)
    if new < old:
        return None, [f"updated policy top-1 {new:.3f} < {old:.3f} in service: not promoted"]
    candidate.meta = candidate.meta.model_copy(
        update={"train_to": fresh[cut - 1].event.timestamp, "evaluated_to": max(e.given_at for e in fresh)}
    )
    note = f"policy updated from {cut} endorsed actions: top-1 {old:.3f} -> {new:.3f} on the newest {len(judged)}"
    return PolicyUpdate(candidate, new, old), [note]


def for_policy(examples: Sequence[CriticExample], policy: Policy, schema: ProcessSchema) -> list[CriticExample]:
    """The examples as ``policy`` suggests them: those recorded under another policy version are
    relabelled (a certificate is for the policy in service and its suggestions), the rest kept."""
    stale = [e for e in examples if e.policy_version != policy.version]
    if not stale:
        return list(examples)
    fresh = {e.feedback_id: e for e in relabelled(stale, policy, schema)}
    # An example the policy has no suggestion for any more is dropped: there is nothing to judge.
    return [
        fresh.get(e.feedback_id, e) for e in examples if e.policy_version == policy.version or e.feedback_id in fresh
    ]


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
