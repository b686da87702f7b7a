"""Apply a hand control: the service pointer first (workers follow it within one reload interval),
then the store's history, then, for a stage that moved, a ``StageChanged`` on ``stage.changes``.

The pointer is the one source of truth and is written under the registry's lock, so a pause is in
force, and survives restarts, before anything else happens. The event is a notification: a broker
that does not acknowledge it leaves the change in force and says so in the result.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from selective_autonomy.config import Settings
from selective_autonomy.controls import hand
from selective_autonomy.controls.errors import UnknownCluster, UnknownProcess
from selective_autonomy.controls.hand import HandChange
from selective_autonomy.inference.registry import (
    WHOLE_PROCESS,
    HandStage,
    ModelRegistry,
    Pause,
    PendingPromotion,
    ServicePointer,
)
from selective_autonomy.schemas.event_parts import Stage, utc_now
from selective_autonomy.schemas.events import StageChanged
from selective_autonomy.store.models import HandControl, HandControlRecord, StageTransition
from selective_autonomy.store.repository import FeedbackStore

log = logging.getLogger(__name__)

StagePublisher = Callable[[list[StageChanged]], None]
"""Sends stage changes and returns once the broker acknowledged them, or raises."""


class ControlResult(BaseModel):
    """What one hand control did."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    process_id: str
    scope: str = Field(description=f"The business cluster, or {WHOLE_PROCESS!r} for the whole process.")
    control: HandControl
    changed: bool = Field(description="False: it was already so (a scope already paused keeps its first pause).")
    stage: Stage | None = Field(default=None, description="The cluster's stage now (for a cluster scope).")
    stage_change: StageChanged | None = Field(default=None, description="Set when the stage moved.")
    published: bool | None = Field(
        default=None, description="Whether stage.changes acknowledged the change; None: nothing to publish."
    )
    publish_error: str | None = None
    pointer_revision: int
    paused: dict[str, Pause] = Field(default_factory=dict, description="The pauses in force now.")
    message: str


class ClusterControls(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    business_cluster: str
    stage: Stage
    held_by_hand: HandStage | None = Field(default=None, description="The stage a person set; the loop holds it.")
    paused: Pause | None = Field(default=None, description="The pause that covers the cluster (its own or '*').")
    certified: bool = Field(description="Whether a certificate (and so thresholds) is in force.")
    pending_promotion: PendingPromotion | None = Field(
        default=None, description="A promotion to selective the learning loop proposed, waiting for confirmation."
    )


class ControlsOverview(BaseModel):
    """A process's stages, hand holds, pauses and the history of hand controls and stage moves."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    process_id: str
    pointer_revision: int
    paused: dict[str, Pause]
    clusters: list[ClusterControls]
    history: list[HandControlRecord] = Field(description="Hand controls, oldest first (the newest ones).")
    stage_history: list[StageTransition] = Field(description="Stage moves, by hand or by the loop, oldest first.")


class HandControls:
    """Sets stages and pauses by hand for the processes of one models directory.

    :param publish: sends stage changes (``stage.changes``); default None, none are sent.
    :param clock: the time recorded for each control; default now, UTC.
    """

    def __init__(
        self,
        registry: ModelRegistry,
        store: FeedbackStore,
        publish: StagePublisher | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.registry = registry
        self.store = store
        self.publish = publish
        self.clock = clock

    def clusters(self, process_id: str) -> list[str]:
        """The business clusters of a process's schema; :class:`UnknownProcess` when it has none here."""
        if process_id not in self.registry.processes():
            raise UnknownProcess(f"no process {process_id!r} in {self.registry.models_dir}")
        return [c.id for c in self.registry.schema(process_id).business_clusters]

    def _cluster(self, process_id: str, cluster: str, lifting: set[str] | None = None) -> str:
        """``cluster``, once known to be one of the process's schema; or, with ``lifting`` (the
        holds or pauses in force), one of those: a schema replaced since
        (``selauto process add --replace``) keeps the hand controls of the clusters it dropped, and
        a person must be able to lift them."""
        known = self.clusters(process_id)
        if cluster not in known and cluster not in (lifting or set()) - {WHOLE_PROCESS}:
            hint = "; leave the cluster out for the whole process" if cluster == WHOLE_PROCESS else ""
            raise UnknownCluster(
                f"process {process_id!r} has no business cluster {cluster!r} (clusters: {', '.join(known)}){hint}"
            )
        return cluster

    def _scope(self, process_id: str, cluster: str | None, lifting: set[str] | None = None) -> str:
        if cluster is None:
            self.clusters(process_id)
            return WHOLE_PROCESS
        return self._cluster(process_id, cluster, lifting)

    # -- the controls ------------------------------------------------------------------------------

    def set_stage(self, change: HandChange, cluster: str, stage: Stage) -> ControlResult:
        """Set ``cluster``'s stage and hold it there against the learning loop."""
        process_id, at = change.process_id, self.clock()
        self._cluster(process_id, cluster)
        before, after = self.registry.update(process_id, lambda p: hand.set_stage(p, cluster, stage, change, at))
        self.store.record_hand_control(
            process_id, cluster, HandControl.stage, reason=change.reason, changed_by=change.by, stage=stage, at=at
        )
        moved = before.stage(cluster) is not stage
        event: StageChanged | None = None
        if moved:
            reason = f"set by hand by {change.by}: {change.reason}"
            self.store.record_stage_transition(process_id, cluster, stage, reason=reason, at=at, changed_by=change.by)
            certificate = after.certificates.get(cluster)
            event = StageChanged(
                process_id=process_id,
                business_cluster=cluster,
                from_stage=before.stage(cluster),
                to_stage=stage,
                reason=reason,
                certified_coverage=certificate.coverage if certificate else None,
                thresholds_version=after.thresholds.version,
                changed_at=at,
            )
        published, error = self._publish([event] if event else [])
        what = f"{before.stage(cluster).value} -> {stage.value}" if moved else f"stays {stage.value}"
        notes = [f"{process_id}/{cluster}: {what}, held by hand until set again or released"]
        if stage is Stage.selective and cluster not in after.certificates:
            notes.append("no certificate yet: nothing runs unattended here until the learning loop certifies it")
        if cover := after.pause_for(cluster):
            notes.append("still paused" + (" with the whole process" if cover[0] == WHOLE_PROCESS else ""))
        return self._result(
            change, cluster, HandControl.stage, after, True, event=event, published=published, error=error, notes=notes
        )

    def release(self, change: HandChange, cluster: str) -> ControlResult:
        """Give ``cluster``'s stage back to the learning loop."""
        process_id, at = change.process_id, self.clock()
        self._cluster(process_id, cluster, lifting=set(self.registry.pointer(process_id).manual))
        _, after = self.registry.update(process_id, lambda p: hand.release(p, cluster))
        self.store.record_hand_control(
            process_id, cluster, HandControl.release, reason=change.reason, changed_by=change.by, at=at
        )
        notes = [f"{process_id}/{cluster}: stage {after.stage(cluster).value} is the learning loop's again"]
        return self._result(change, cluster, HandControl.release, after, True, notes=notes)

    def pause(self, change: HandChange, cluster: str | None = None) -> ControlResult:
        """Pause a cluster, or the whole process (``cluster`` None): nothing of it runs unattended."""
        process_id, at = change.process_id, self.clock()
        scope = self._scope(process_id, cluster)
        before, after = self.registry.update(process_id, lambda p: hand.pause(p, scope, change, at))
        changed = after is not before
        if changed:
            self.store.record_hand_control(
                process_id, scope, HandControl.pause, reason=change.reason, changed_by=change.by, at=at
            )
            notes = [f"{process_id}/{scope}: paused; workers defer every step that would run within a reload"]
        else:
            first = after.paused[scope]
            notes = [f"{process_id}/{scope}: already paused by {first.by} at {first.at:%Y-%m-%d %H:%M}: {first.reason}"]
        return self._result(change, scope, HandControl.pause, after, changed, notes=notes)

    def resume(self, change: HandChange, cluster: str | None = None) -> ControlResult:
        """Lift the pause of a cluster, or of the whole process (``cluster`` None); other pauses stay."""
        process_id, at = change.process_id, self.clock()
        scope = self._scope(process_id, cluster, lifting=set(self.registry.pointer(process_id).paused))
        _, after = self.registry.update(process_id, lambda p: hand.resume(p, scope))
        self.store.record_hand_control(
            process_id, scope, HandControl.resume, reason=change.reason, changed_by=change.by, at=at
        )
        notes = [f"{process_id}/{scope}: resumed"]
        if after.paused:
            notes.append(f"still paused: {', '.join(sorted(after.paused))}")
        return self._result(change, scope, HandControl.resume, after, True, notes=notes)

    def confirm(self, change: HandChange, cluster: str) -> ControlResult:
        """Confirm the promotion of ``cluster`` to selective the learning loop proposed
        (``learning.promotion = confirmed``): the cluster runs what the certificate behind the
        proposal passes, and the stage stays the loop's (it may demote it)."""
        process_id, at = change.process_id, self.clock()
        self._cluster(process_id, cluster)
        confirmed: list[PendingPromotion] = []

        def promote(pointer: ServicePointer) -> ServicePointer:
            promoted, pending = hand.confirm(pointer, process_id, cluster)
            confirmed.append(pending)
            return promoted

        # Checked and written under the registry's lock: a proposal the loop voided, or a pause set,
        # a moment ago is seen here, never confirmed from an older read.
        before, after = self.registry.update(process_id, promote)
        [pending] = confirmed
        self.store.record_hand_control(
            process_id,
            cluster,
            HandControl.confirm,
            reason=change.reason,
            changed_by=change.by,
            stage=Stage.selective,
            at=at,
        )
        reason = f"promotion confirmed by {change.by}: {change.reason} ({pending.reason})"
        self.store.record_stage_transition(
            process_id, cluster, Stage.selective, reason=reason, at=at, changed_by=change.by
        )
        event = StageChanged(
            process_id=process_id,
            business_cluster=cluster,
            from_stage=before.stage(cluster),
            to_stage=Stage.selective,
            reason=reason,
            certified_coverage=pending.certified_coverage,
            thresholds_version=after.thresholds.version,
            changed_at=at,
        )
        published, error = self._publish([event])
        certificate = pending.certificate
        notes = [
            f"{process_id}/{cluster}: copilot -> selective, on the certificate of "
            f"{certificate.issued_at:%Y-%m-%d %H:%M} (policy {certificate.policy_version}, critic "
            f"{certificate.critic_version}, certified coverage {pending.certified_coverage:.1%}); the learning loop "
            "may still demote it"
        ]
        return self._result(
            change,
            cluster,
            HandControl.confirm,
            after,
            True,
            event=event,
            published=published,
            error=error,
            notes=notes,
        )

    # -- reading -----------------------------------------------------------------------------------

    def overview(self, process_id: str, newest: int = 50) -> ControlsOverview:
        """Stages, holds and pauses in force, and the ``newest`` hand controls and stage moves per cluster."""
        clusters = self.clusters(process_id)
        pointer = self.registry.pointer(process_id)
        moves = [t for c in clusters for t in self.store.stage_history(process_id, c)]
        moves.sort(key=lambda t: (t.at, t.id))
        return ControlsOverview(
            process_id=process_id,
            pointer_revision=pointer.revision,
            paused=pointer.paused,
            clusters=[
                ClusterControls(
                    business_cluster=c,
                    stage=pointer.stage(c),
                    held_by_hand=pointer.manual.get(c),
                    paused=cover[1] if (cover := pointer.pause_for(c)) else None,
                    certified=c in pointer.certificates,
                    pending_promotion=pointer.pending_promotion(c),
                )
                for c in clusters
            ],
            history=self.store.hand_controls(process_id, newest=newest),
            stage_history=moves[-newest:],
        )

    # -- helpers -----------------------------------------------------------------------------------

    def _publish(self, changes: list[StageChanged]) -> tuple[bool | None, str | None]:
        if not changes or self.publish is None:
            return None, None
        try:
            self.publish(changes)
        except Exception as exc:  # the change is in force (pointer, store); the event only announces it
            log.warning("stage change not published on stage.changes: %s", exc)
            return False, f"{type(exc).__name__}: {exc}"
        return True, None

    def _result(
        self,
        change: HandChange,
        scope: str,
        control: HandControl,
        after: ServicePointer,
        changed: bool,
        *,
        notes: list[str],
        event: StageChanged | None = None,
        published: bool | None = None,
        error: str | None = None,
    ) -> ControlResult:
        return ControlResult(
            process_id=change.process_id,
            scope=scope,
            control=control,
            changed=changed,
            stage=after.stage(scope) if scope != WHOLE_PROCESS else None,
            stage_change=event,
            published=published,
            publish_error=error,
            pointer_revision=after.revision,
            paused=after.paused,
            message="; ".join(notes),
        )


def kafka_stage_publisher(settings: Settings, timeout_s: float = 5.0) -> StagePublisher:
    """Produces stage changes on ``stage.changes`` with the configured wire format, keyed
    ``process/cluster`` like the learning loop's, and waits at most ``timeout_s`` for the broker."""

    def publish(changes: list[StageChanged]) -> None:
        from selective_autonomy.streams.producer import EventProducer

        # librdkafka gives up on the records after the same time, so an unreachable broker costs
        # timeout_s, not the client's default of five minutes; and it is reported once, by flush,
        # rather than as a connection error logged every few milliseconds.
        producer = EventProducer(
            settings, None, **{"message.timeout.ms": max(1, int(timeout_s * 1000)), "log_level": 2}
        )
        for event in changes:
            producer.send(settings.topics.stage_changes, event, key=f"{event.process_id}/{event.business_cluster}")
        producer.flush(timeout_s)

    return publish
