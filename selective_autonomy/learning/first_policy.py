"""A process's first policy, learned from its operators' recorded traces: the rule, as a pure plan.

A process starts in ``logging``: nothing is suggested, and ``ui.state`` is only recorded (the
store's trace table). Once it has no policy in service and at least ``learning.first_policy_cases``
complete cases are recorded (:class:`~selective_autonomy.store.models.CaseCompletion`), the plan:

1. takes the newest ``learning.window_cases`` complete cases, oldest first, as training cases
   (:mod:`selective_autonomy.learning.recorded`);
2. trains the default policy (embedded) on the older part of a chronological split and measures
   its top-1 on the newest ``learning.first_policy_eval_fraction``: a policy is judged on cases
   later than any it learned from, as every policy here is;
3. puts it in service and moves every cluster still in ``logging`` to ``copilot``, with the
   measurement as the recorded reason. Copilot executes nothing: every step is a suggestion an
   operator accepts or corrects, and those answers certify (or not) what may later run unattended.

Hand controls win, by the learning loop's rule
(:meth:`~selective_autonomy.inference.registry.ServicePointer.hand_hold`): a cluster whose stage a
person set stays there, and a paused cluster (or any cluster of a paused process) is not promoted,
``logging -> copilot`` included. The policy still goes into service (a pause is about what runs,
not about which model suggests); each move held back is in the plan's ``held`` and notes, and
:meth:`~selective_autonomy.learning.loop.LearningLoop.first_policy` makes it once the pause is
lifted and traces arrive.

Nothing here reads or writes the store, the models directory or a topic: :func:`plan_first_policy`
returns a :class:`~selective_autonomy.learning.plan_records.LearningPlan`, and
:func:`~selective_autonomy.learning.apply.apply_plan` publishes it like any other (artefact, then
``current.json``, then stage history, model versions and ``StageChanged``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from selective_autonomy.config import LearningSettings
from selective_autonomy.inference.artefact import ArtefactMeta
from selective_autonomy.inference.datasets import case_examples
from selective_autonomy.inference.protocol import Policy, PolicyConfidenceCritic
from selective_autonomy.inference.registry import ServicePointer
from selective_autonomy.learning.plan_records import LearningPlan, NewArtefact
from selective_autonomy.learning.recorded import recorded_steps
from selective_autonomy.learning.stages import StageDecision, StageEvidence, next_stage
from selective_autonomy.schemas.event_parts import Stage
from selective_autonomy.schemas.process import ProcessSchema
from selective_autonomy.store.models import ModelKind
from selective_autonomy.traces.format import Case
from selective_autonomy.traces.split import chronological_order

EVAL_BATCH = 1024


class TrainedPolicy(Policy, Protocol):
    """A policy that was just trained: it can describe and save itself as an artefact."""

    def train_meta(self, cases: Sequence[Case], metrics: dict[str, float] | None = None) -> ArtefactMeta: ...

    def save(self, directory: Path, meta: ArtefactMeta) -> None: ...


PolicyTrainer = Callable[[ProcessSchema, Sequence[Case]], TrainedPolicy]


def embedded_trainer(schema: ProcessSchema, cases: Sequence[Case]) -> TrainedPolicy:
    """The default policy, as ``selauto train policy`` trains it."""
    # torch is imported only when a first policy is actually trained.
    from selective_autonomy.inference.embedded_policy import EmbeddedPolicy

    return EmbeddedPolicy.train(schema, cases)


@dataclass(frozen=True)
class FirstPolicyInput:
    """What the rule looks at. ``complete_cases`` is counted (at most the threshold: a bounded
    count); ``cases`` are read and converted only once the count reaches it."""

    schema: ProcessSchema
    pointer: ServicePointer
    complete_cases: int
    cases: Sequence[Case] = ()


def waiting_for(pointer: ServicePointer, complete_cases: int, config: LearningSettings) -> str | None:
    """Why no first policy is trained yet, or None when it is due."""
    if pointer.policy is not None:
        return "a policy is in service: no first policy to train"
    if complete_cases < config.first_policy_cases:
        return f"{complete_cases} of {config.first_policy_cases} complete cases recorded: no first policy yet"
    return None


def top1(policy: Policy, cases: Sequence[Case]) -> float:
    """Share of the cases' steps whose recorded action is the policy's first proposal."""
    examples = case_examples(cases)
    if not len(examples):
        return 0.0
    hits = 0
    for start in range(0, len(examples), EVAL_BATCH):
        proposals = policy.propose(examples.events[start : start + EVAL_BATCH], top_k=1)
        targets = examples.targets[start : start + EVAL_BATCH]
        hits += sum(p.top is not None and p.top.action == t for p, t in zip(proposals, targets, strict=True))
    return hits / len(examples)


def split_cases(cases: Sequence[Case], eval_fraction: float) -> tuple[list[Case], list[Case]]:
    """Older cases to train on, the newest ``eval_fraction`` to measure on; neither part empty."""
    ordered = chronological_order(cases)
    cut = min(max(1, round(len(ordered) * (1 - eval_fraction))), len(ordered) - 1)
    return ordered[:cut], ordered[cut:]


def plan_first_policy(
    inp: FirstPolicyInput, config: LearningSettings, train: PolicyTrainer = embedded_trainer
) -> LearningPlan:
    """The plan: unchanged (with the reason in its notes) until a first policy is due, then train,
    measure, serve and move the clusters in ``logging`` to ``copilot``."""
    pointer, schema = inp.pointer, inp.schema
    waiting = waiting_for(pointer, inp.complete_cases, config)
    if waiting is None and len(inp.cases) < 2:
        waiting = f"{len(inp.cases)} recorded cases with an operator step: too few to train and measure"
    if waiting is not None:
        return LearningPlan(process_id=schema.process_id, previous=pointer, pointer=pointer, notes=[waiting])
    fit, held_out = split_cases(inp.cases, config.first_policy_eval_fraction)
    policy = train(schema, fit)
    accuracy = top1(policy, held_out)
    metrics = {
        "trace_top1": accuracy,
        "trace_eval_cases": float(len(held_out)),
        "trace_eval_steps": float(recorded_steps(held_out)),
    }
    meta = policy.train_meta(fit, metrics)
    path = f"policy/{meta.version}"
    reason = (
        f"first policy {meta.version} trained on {len(fit)} recorded cases ({recorded_steps(fit)} steps); "
        f"top-1 {accuracy:.1%} on the newest {len(held_out)}: suggest and collect feedback"
    )
    rules = config  # the learning section is the stage rules
    stages = {c.id: pointer.stage(c.id) for c in schema.business_clusters}
    decisions: dict[str, StageDecision] = {}
    held: dict[str, StageDecision] = {}
    notes = [reason]
    for cluster, stage in stages.items():
        decision = next_stage(stage, StageEvidence(policy_in_service=True), rules)
        if stage is not Stage.logging or decision is None:
            continue
        decision = decision.model_copy(update={"reason": reason})
        hold = pointer.hand_hold(cluster, decision.stage)
        if hold is not None:
            held[cluster] = decision
            notes.append(f"{cluster}: would move {stage.value} -> {decision.stage.value}; {hold}")
            continue
        decisions[cluster] = decision
        stages[cluster] = decision.stage
    return LearningPlan(
        process_id=schema.process_id,
        previous=pointer,
        pointer=pointer.model_copy(update={"policy": path, "stages": stages}),
        artefacts=[NewArtefact(ModelKind.policy, policy, meta, path)],
        decisions=decisions,
        held=held,
        critic="confidence" if pointer.critic is None else "unchanged",
        critic_version=PolicyConfidenceCritic.version if pointer.critic is None else "",
        policy_version=meta.version,
        notes=notes,
    )
