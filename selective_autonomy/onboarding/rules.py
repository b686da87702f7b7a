"""What a hand change does to the service pointer: pure functions of the pointer and the schema,
unit-tested without a registry or a store.

**Models (deploy, rollback).** A certificate holds for the policy and critic it was earned with
(the rule ``learning/plan.py`` applies when it replaces a model itself). When a deploy or a
rollback changes either, every certificate of the process is void, and so is every threshold (a
threshold is on the old critic's score, or was set by hand for the old models): each selective
cluster goes back to copilot and runs nothing unattended until the learning loop certifies the
new pair on feedback given to its suggestions. A rollback restores no certificate, not even one
earned with the models it goes back to: the precision monitor may have counted against them
since, and the next learning run certifies on current evidence. A cluster in logging goes to
copilot once a policy is in service (the stage machine's first rule, ``learning/stages.py``): the
learning loop applies that rule otherwise, but it runs on feedback and a process in logging gets
none. Clusters in copilot stay there.

**Schema (``process add --replace``).** Models, certificates and thresholds are all for the old
schema: the pointer keeps none of them, every cluster is in logging, and the evidence windows of
the old clusters are forgotten.

In both, the online lift over the thresholds (``threshold_lift``) and the promotions waiting for
confirmation (``pending_promotions``) go with the certificates they sat on.

**Hand controls win** (:mod:`selective_autonomy.controls`, the rule the learning loop follows:
:meth:`~selective_autonomy.inference.registry.ServicePointer.hand_hold`). Pauses and hand-set
stages are kept as they are (``ModelRegistry.publish`` keeps them in any case; only a hand
control changes them). A stage set by hand is never moved: a cluster held in selective loses its
certificate and thresholds with the others, so it stays selective but runs nothing unattended
until the learning loop certifies the new models, as on a monitor alarm; one held in logging
stays there with a new policy. A paused cluster, or any cluster of a paused process, is not
promoted, ``logging -> copilot`` included (it may be demoted); the learning loop moves it once
the pause is lifted. Each move held back is a line of :attr:`PointerChange.held`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from selective_autonomy.config import StageRules
from selective_autonomy.inference.registry import WHOLE_PROCESS, ServicePointer
from selective_autonomy.inference.thresholds import Thresholds
from selective_autonomy.learning.stages import StageEvidence, next_stage
from selective_autonomy.onboarding.protocol import version_of
from selective_autonomy.schemas.event_parts import Stage
from selective_autonomy.schemas.events import StageChanged
from selective_autonomy.schemas.process import ProcessSchema


@dataclass(frozen=True)
class PointerChange:
    """The pointer to publish, the stage changes it makes, what it voids and the moves a hand
    control held back (one line each)."""

    pointer: ServicePointer
    stage_changes: list[StageChanged] = field(default_factory=list)
    voided: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)


def change_models(
    pointer: ServicePointer,
    schema: ProcessSchema,
    policy: str | None,
    critic: str | None,
    why: str,
    rules: StageRules | None = None,
) -> PointerChange:
    """The pointer with ``policy`` and ``critic`` (paths relative to the process directory) in
    service. ``why`` says who changed the models and how; it leads every stage change's reason."""
    if (policy, critic) == (pointer.policy, pointer.critic):
        return PointerChange(pointer)
    rules = rules or StageRules()
    stages = dict(pointer.stages)
    changes: list[StageChanged] = []
    held: list[str] = []
    for cluster in (c.id for c in schema.business_clusters):
        before = after = pointer.stage(cluster)
        reason = ""
        if before is Stage.selective:
            after = Stage.copilot
            reason = f"{why}: the certificate was for the models replaced, void until the learning loop recertifies"
        elif before is Stage.logging and policy is not None:
            decision = next_stage(before, StageEvidence(policy_in_service=True), rules)
            if decision is not None:
                after, reason = decision.stage, f"{decision.reason} ({why})"
        hold = pointer.hand_hold(cluster, after)
        if hold is not None:
            held.append(f"{cluster}: would move {before.value} -> {after.value}; {hold}")
            after = before
        if after is Stage.selective:
            # Held there by hand: what it ran on is void with every other certificate.
            held.append(f"{cluster}: stays selective and runs nothing unattended until the learning loop recertifies")
        stages[cluster] = after
        if after is not before:
            changes.append(_stage_changed(schema.process_id, cluster, before, after, reason))
    voided = _certificates_and_thresholds(pointer)
    changed = pointer.model_copy(update={"policy": policy, "critic": critic, "stages": stages, **_uncertified()})
    return PointerChange(changed, changes, voided, held)


def reset_for_schema(pointer: ServicePointer, old: ProcessSchema | None, new: ProcessSchema, why: str) -> PointerChange:
    """The pointer of a process whose schema is replaced by ``new`` (``old`` None: a new process)."""
    voided = []
    if pointer.policy is not None:
        voided.append(f"policy {version_of(pointer.policy)} (built for schema {old.schema_hash() if old else '?'})")
    if pointer.critic is not None:
        voided.append(f"critic {version_of(pointer.critic)}")
    voided += _certificates_and_thresholds(pointer)
    if old is not None:
        gone = sorted({c.id for c in old.business_clusters} - {c.id for c in new.business_clusters})
        if gone:
            voided.append(f"clusters no longer in the schema: {', '.join(gone)}")
    changes: list[StageChanged] = []
    held: list[str] = []
    stages: dict[str, Stage] = {}
    for cluster in (c.id for c in new.business_clusters):
        before = pointer.stage(cluster)
        hold = pointer.hand_hold(cluster, Stage.logging)
        if hold is not None:
            stages[cluster] = before
            held.append(
                f"{cluster}: would move {before.value} -> logging; {hold}; with no policy in service every "
                "state goes to an operator"
            )
        elif before is not Stage.logging:
            reason = f"{why}: models and certificates of the old schema are void"
            changes.append(_stage_changed(new.process_id, cluster, before, Stage.logging, reason))
    kept = sorted(({*pointer.manual, *pointer.paused} - {WHOLE_PROCESS}) - {c.id for c in new.business_clusters})
    if kept:
        held.append(
            f"hand controls of clusters no longer in the schema stay until lifted (selauto stage release, "
            f"selauto resume): {', '.join(kept)}"
        )
    reset = pointer.model_copy(
        update={
            "policy": None,
            "critic": None,
            "stages": stages,
            "default_stage": Stage.logging,
            "evidence_since": {},
            **_uncertified(),
        }
    )
    return PointerChange(reset, changes, voided, held)


def _uncertified() -> dict[str, Any]:
    """The pointer's fields that rest on its certificates, as they are once those are void."""
    return {
        "thresholds": Thresholds(),
        "certificates": {},
        "selective_since": {},
        "threshold_lift": {},
        "pending_promotions": {},  # each rested on a certificate
    }


def _certificates_and_thresholds(pointer: ServicePointer) -> list[str]:
    voided = [
        f"certificate of {cluster} (policy {cert.policy_version}, critic {cert.critic_version}, "
        f"coverage {cert.coverage:.1%})"
        for cluster, cert in sorted(pointer.certificates.items())
    ]
    if pointer.thresholds.values:
        voided.append(f"{len(pointer.thresholds.values)} threshold(s) of version {pointer.thresholds.version}")
    return voided


def _stage_changed(process_id: str, cluster: str, before: Stage, after: Stage, reason: str) -> StageChanged:
    return StageChanged(
        process_id=process_id, business_cluster=cluster, from_stage=before, to_stage=after, reason=reason
    )
