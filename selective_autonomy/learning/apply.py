"""Publish a learning plan: new artefacts, then the service pointer, then what follows from it.

The service pointer is the one source of truth for stages. Artefacts are written first (a pointer
never names a half-written model); the pointer is replaced atomically; then the store's stage
history and model versions, and the ``stage.changes`` events, are written from the difference
between the pointer that was in service and the one just published. The pointer is published only
over the revision the plan was made from (:class:`~selective_autonomy.inference.registry.PointerChanged`
otherwise), so a hand control set while the loop planned is never overwritten by a stale plan.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel, Field

from selective_autonomy.inference.registry import ModelRegistry
from selective_autonomy.learning.calibration import CalibrationReport
from selective_autonomy.learning.monitor import MonitorReading
from selective_autonomy.learning.plan_records import LearningPlan
from selective_autonomy.schemas.events import StageChanged
from selective_autonomy.store.models import ModelKind
from selective_autonomy.store.repository import FeedbackStore

StageListener = Callable[[list[StageChanged]], None]


class LearningReport(BaseModel):
    process_id: str
    feedback: int = Field(description="Feedback records read (the window).")
    critic_examples: int
    critic: str = Field(description="Which critic the thresholds are for: confidence, in_service, new, unchanged.")
    critic_version: str
    critic_promoted: bool
    policy_version: str
    policy_promoted: bool
    retrained: bool
    trace_cases: int = Field(default=0, description="Recorded cases read from the trace table (a first policy).")
    calibration: CalibrationReport | None = None
    monitor: dict[str, MonitorReading] = Field(default_factory=dict)
    lifts: dict[str, float] = Field(default_factory=dict, description="cluster -> thresholds above the certified ones")
    stage_changes: list[StageChanged] = Field(default_factory=list)
    proposed: dict[str, str] = Field(
        default_factory=dict,
        description="cluster -> why it would be promoted to selective: left to a supervisor (learning.promotion = "
        "confirmed; pending in the service pointer)",
    )
    pointer_revision: int = 0
    notes: list[str] = Field(default_factory=list)


def stage_changes(plan: LearningPlan) -> list[StageChanged]:
    """What moved between the pointer in service and the planned one, with the plan's reasons."""
    previous, pointer = plan.previous, plan.pointer
    changes = []
    for cluster, decision in plan.decisions.items():
        before, after = previous.stage(cluster), pointer.stage(cluster)
        if before is after:
            continue
        certificate = pointer.certificates.get(cluster)
        reading = plan.monitor.get(cluster)
        changes.append(
            StageChanged(
                process_id=plan.process_id,
                business_cluster=cluster,
                from_stage=before,
                to_stage=after,
                reason=decision.reason,
                certified_coverage=certificate.coverage if certificate else None,
                rolling_precision=reading.estimate if reading else None,
                thresholds_version=pointer.thresholds.version,
            )
        )
    return changes


def apply_plan(
    plan: LearningPlan,
    registry: ModelRegistry,
    store: FeedbackStore,
    on_stage_changes: StageListener | None = None,
    *,
    feedback_read: int = 0,
    retrained: bool = True,
    trace_cases: int = 0,
) -> LearningReport:
    directory = registry.process_dir(plan.process_id)
    for artefact in plan.artefacts:
        artefact.model.save(directory / artefact.path, artefact.meta)
    unchanged = not plan.artefacts and plan.pointer.model_dump(exclude={"revision"}) == plan.previous.model_dump(
        exclude={"revision"}
    )
    # A run that changes nothing (most monitor runs) leaves current.json alone: no worker reloads.
    # Otherwise only over the pointer the plan was made from: a person who paused autonomy, set a
    # stage, deployed or rolled back models meanwhile made a plan on the older pointer wrong
    # (PointerChanged; the loop plans again from the new one).
    published = (
        plan.previous
        if unchanged
        else registry.publish(plan.process_id, plan.pointer, expected_revision=plan.previous.revision)
    )
    for artefact in plan.artefacts:
        store.record_model_version(
            artefact.kind,
            plan.process_id,
            artefact.meta.version,
            artefact.path,
            dict(artefact.meta.metrics),
            promoted=True,
        )
    if plan.calibration is not None:
        store.record_model_version(
            ModelKind.thresholds,
            plan.process_id,
            plan.pointer.thresholds.version,
            "current.json",
            {"certified_coverage": plan.calibration.certified_coverage()},
            promoted=True,
        )
    changes = stage_changes(plan)
    for change in changes:
        store.record_stage_transition(plan.process_id, change.business_cluster, change.to_stage, reason=change.reason)
    if changes and on_stage_changes is not None:
        on_stage_changes(changes)
    kinds = {a.kind for a in plan.artefacts}
    return LearningReport(
        process_id=plan.process_id,
        feedback=feedback_read,
        critic_examples=plan.examples,
        critic=plan.critic,
        critic_version=plan.critic_version,
        critic_promoted=ModelKind.critic in kinds,
        policy_version=plan.policy_version,
        policy_promoted=ModelKind.policy in kinds,
        retrained=retrained,
        trace_cases=trace_cases,
        calibration=plan.calibration,
        monitor=plan.monitor,
        lifts=plan.lifts,
        stage_changes=changes,
        proposed={cluster: decision.reason for cluster, decision in plan.proposed.items()},
        pointer_revision=published.revision,
        notes=plan.notes,
    )
