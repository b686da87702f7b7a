"""The hand controls as pure changes of the service pointer: no file, store or topic here.

A stage set by hand is recorded in ``pointer.manual``; the learning loop never moves that cluster
(see :mod:`selective_autonomy.learning.plan` for what it still does there) until a person sets it
again or releases it. A pause is recorded in ``pointer.paused`` under the cluster, or under ``*``
for the whole process; the gate defers every step of a paused scope that would have run, with
reason ``paused``, and the loop never promotes it. A promotion the loop proposed
(``pointer.pending_promotions``, with ``learning.promotion = confirmed``) moves the cluster only once
a person confirms it (:func:`confirm`).
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from selective_autonomy.controls.errors import HeldByHand, NothingPending, NothingToChange
from selective_autonomy.inference.registry import WHOLE_PROCESS, HandStage, Pause, PendingPromotion, ServicePointer
from selective_autonomy.schemas.event_parts import Stage
from selective_autonomy.schemas.identifiers import ProcessId

REASON_MAX = 1000


class HandChange(BaseModel):
    """Who changes what of which process, and why: what every hand control takes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    process_id: ProcessId
    reason: str = Field(min_length=1, max_length=REASON_MAX, description="Why; kept in the history.")
    by: str = Field(min_length=1, max_length=255, description="Who: an operator id or a login name.")


def scope_name(cluster: str | None) -> str:
    """The key of a pause: the cluster, or ``*`` for the whole process."""
    return WHOLE_PROCESS if cluster is None else cluster


def set_stage(pointer: ServicePointer, cluster: str, stage: Stage, change: HandChange, at: datetime) -> ServicePointer:
    """``cluster`` at ``stage``, held there against the learning loop.

    Certificates and thresholds stay: a person's demotion says nothing against them, and a cluster
    set back to selective runs only what they pass. The precision monitor watches a cluster from
    the moment it (re)enters selective.
    """
    selective_since = dict(pointer.selective_since)
    if stage is Stage.selective and pointer.stage(cluster) is not Stage.selective:
        selective_since[cluster] = at
    elif stage is not Stage.selective:
        selective_since.pop(cluster, None)
    hand = HandStage(stage=stage, reason=change.reason, by=change.by, at=at)
    return pointer.model_copy(
        update={
            "stages": {**pointer.stages, cluster: stage},
            "selective_since": selective_since,
            "manual": {**pointer.manual, cluster: hand},
            # A person chose the stage: a proposal for it is moot, and the loop proposes none while
            # the stage is held.
            "pending_promotions": {c: p for c, p in pointer.pending_promotions.items() if c != cluster},
        }
    )


def confirm(pointer: ServicePointer, process_id: str, cluster: str) -> tuple[ServicePointer, PendingPromotion]:
    """Confirm the promotion of ``cluster`` the learning loop proposed: it goes selective with the
    thresholds of the certificate the proposal rests on, watched by the precision monitor from the
    newest evidence the proposal saw. The stage stays the loop's (not held by hand), so the monitor
    or a recertification still demotes it on its own.

    :class:`NothingPending` when no proposal can be confirmed; :class:`HeldByHand` when a pause or a
    stage set by hand forbids the promotion (the proposal stays for after the pause).
    """
    proposal = pointer.pending_promotions.get(cluster)
    pending = pointer.pending_promotion(cluster)
    if pending is None:
        if pointer.stage(cluster) is not Stage.copilot:
            why = f"the cluster is in {pointer.stage(cluster).value}, not copilot"
        elif proposal is None:
            why = "none was proposed (learning.promotion = confirmed proposes one once the cluster is certified)"
        else:
            why = "the certificate it rested on was replaced or voided since; the learning loop proposes again if due"
        raise NothingPending(f"no promotion of cluster {cluster!r} is pending: {why}")
    hand = pointer.manual.get(cluster)
    if hand is not None:
        raise HeldByHand(
            f"cluster {cluster!r} is held in {hand.stage.value} by hand by {hand.by} ({hand.reason}): "
            "selauto stage set or release it instead"
        )
    cover = pointer.pause_for(cluster)
    if cover is not None:
        scope, pause = cover
        raise HeldByHand(
            f"cluster {cluster!r} cannot be promoted while {_scope_text(scope)} is paused by {pause.by} "
            f"({pause.reason}); resume it first, the proposal stays"
        )
    # The certified thresholds, whatever the pointer holds for the cluster meanwhile: the online lift
    # starts from them, as after an automatic promotion.
    stale = pointer.thresholds.for_cluster(process_id, cluster)
    thresholds = {k: v for k, v in pointer.thresholds.values.items() if k not in stale}
    thresholds |= {k: key.threshold for k, key in pending.certificate.keys.items()}
    promoted = pointer.model_copy(
        update={
            "stages": {**pointer.stages, cluster: Stage.selective},
            "thresholds": pointer.thresholds.model_copy(update={"values": thresholds}),
            "selective_since": {**pointer.selective_since, cluster: pending.watch_from},
            "threshold_lift": {c: v for c, v in pointer.threshold_lift.items() if c != cluster},
            "pending_promotions": {c: p for c, p in pointer.pending_promotions.items() if c != cluster},
        }
    )
    return promoted, pending


def release(pointer: ServicePointer, cluster: str) -> ServicePointer:
    """Give ``cluster``'s stage back to the learning loop (its stage is unchanged until the loop runs)."""
    if cluster not in pointer.manual:
        raise NothingToChange(f"the stage of cluster {cluster!r} is not held by hand")
    return pointer.model_copy(update={"manual": {c: h for c, h in pointer.manual.items() if c != cluster}})


def pause(pointer: ServicePointer, scope: str, change: HandChange, at: datetime) -> ServicePointer:
    """Pause ``scope``; a scope already paused keeps its first pause (who, when, why)."""
    if scope in pointer.paused:
        return pointer
    entry = Pause(reason=change.reason, by=change.by, at=at)
    return pointer.model_copy(update={"paused": {**pointer.paused, scope: entry}})


def resume(pointer: ServicePointer, scope: str) -> ServicePointer:
    """Lift the pause of exactly ``scope``: a cluster's pause and the whole process's are lifted apart."""
    if scope not in pointer.paused:
        paused = ", ".join(sorted(pointer.paused)) or "nothing"
        raise NothingToChange(f"{_scope_text(scope)} is not paused (paused: {paused})")
    return pointer.model_copy(update={"paused": {s: p for s, p in pointer.paused.items() if s != scope}})


def _scope_text(scope: str) -> str:
    return "the whole process" if scope == WHOLE_PROCESS else f"cluster {scope!r}"
