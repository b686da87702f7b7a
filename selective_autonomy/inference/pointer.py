"""What is in service for one process (:class:`ServicePointer`, the content of ``current.json``) and
the hand controls it carries: pauses, stages set by hand, promotions waiting for a supervisor.

Plain pydantic values: the registry (:mod:`selective_autonomy.inference.registry`) reads and
publishes them; everything that reads a stage or a pause reads it from here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from selective_autonomy.inference.certificate import Certificate
from selective_autonomy.inference.thresholds import Thresholds
from selective_autonomy.schemas.event_parts import Stage

WHOLE_PROCESS = "*"
"""The scope of a pause that covers every business cluster of the process."""

STAGE_ORDER: dict[Stage, int] = {Stage.logging: 0, Stage.copilot: 1, Stage.selective: 2}
"""How much runs unattended in each stage: a move up this order is a promotion."""


class Pause(BaseModel):
    """Autonomy paused by hand: nothing of its scope runs unattended until a person resumes it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reason: str
    by: str
    at: AwareDatetime

    def detail(self, scope: str) -> str:
        """The deferral detail of a step this pause held back."""
        where = "for the whole process" if scope == WHOLE_PROCESS else f"for cluster {scope}"
        return f"autonomy paused {where} by {self.by} at {self.at:%Y-%m-%d %H:%M:%S %Z}: {self.reason}"


class HandStage(BaseModel):
    """A stage set by hand. The learning loop never moves the cluster while it is there; a person
    sets the stage again or releases the cluster (``selauto stage release``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stage: Stage
    reason: str
    by: str
    at: AwareDatetime


class PendingPromotion(BaseModel):
    """A promotion ``copilot -> selective`` the learning loop proposed (``learning.promotion =
    confirmed``) and a supervisor has not confirmed yet. It rests on one certificate: once that is
    replaced or voided (new models, a monitor alarm, a recertification) the proposal is void, and
    the next learning run proposes again if the new certificate still earns it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    certificate: Certificate = Field(description="The certificate the promotion rests on, as the loop proposed it.")
    certified_coverage: float = Field(ge=0.0, le=1.0, description="Share of calibration steps its thresholds run.")
    reason: str = Field(description="The learning loop's reason, as a promotion it made itself would carry.")
    proposed_at: AwareDatetime
    watch_from: AwareDatetime = Field(
        description="The store's receive time the precision monitor counts from once confirmed: the newest evidence "
        "the proposal saw, as an automatic promotion would set selective_since"
    )


class ServicePointer(BaseModel):
    """What is in service for one process: relative artefact paths, thresholds, certificates and
    stages. The one source of truth for stages: the store's history and ``stage.changes`` are
    written from it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    policy: str | None = Field(default=None, description="Policy artefact dir, relative to the process dir.")
    critic: str | None = Field(default=None, description="Critic artefact dir; none = policy-confidence critic.")
    thresholds: Thresholds = Field(default_factory=Thresholds)
    stages: dict[str, Stage] = Field(default_factory=dict, description="business cluster -> stage")
    default_stage: Stage = Stage.logging
    certificates: dict[str, Certificate] = Field(
        default_factory=dict, description="business cluster -> what its thresholds were certified on"
    )
    exploration_share: float = Field(
        default=0.0, ge=0.0, lt=1.0, description="Share of sessions kept in copilot while their cluster is selective."
    )
    selective_since: dict[str, datetime] = Field(
        default_factory=dict,
        description="cluster -> the store's receive time when it went selective: the monitor counts what came after",
    )
    evidence_since: dict[str, datetime] = Field(
        default_factory=dict,
        description="cluster -> certify only on evidence received from this time on (set by an alarm)",
    )
    threshold_lift: dict[str, float] = Field(
        default_factory=dict,
        description="cluster -> how far its thresholds sit above the certified ones, from the judged steps since "
        "(learning/threshold_lift.py)",
    )
    paused: dict[str, Pause] = Field(
        default_factory=dict,
        description=f"business cluster, or {WHOLE_PROCESS!r} for the whole process -> its pause (set by hand)",
    )
    manual: dict[str, HandStage] = Field(
        default_factory=dict, description="business cluster -> the stage a person set; the learning loop holds it"
    )
    pending_promotions: dict[str, PendingPromotion] = Field(
        default_factory=dict,
        description="business cluster -> a promotion to selective the learning loop proposed, waiting for a "
        "supervisor (learning.promotion = confirmed)",
    )
    revision: int = 0

    @model_validator(mode="before")
    @classmethod
    def _drop_retired_fields(cls, data: Any) -> Any:
        # Pointers written by 0.1 carried the acceptance rate at promotion, a drift baseline that
        # selective-stage deferrals are biased against; it is no longer read.
        if isinstance(data, dict) and "reference_acceptance" in data:
            data = {k: v for k, v in data.items() if k != "reference_acceptance"}
        return data

    def stage(self, cluster: str) -> Stage:
        return self.stages.get(cluster, self.default_stage)

    def pause_for(self, cluster: str) -> tuple[str, Pause] | None:
        """The pause that covers ``cluster`` and its scope (the cluster, or the whole process)."""
        for scope in (cluster, WHOLE_PROCESS):
            if scope in self.paused:
                return scope, self.paused[scope]
        return None

    def pending_promotion(self, cluster: str) -> PendingPromotion | None:
        """The promotion of ``cluster`` waiting for confirmation, while it can still be confirmed: the
        cluster is in copilot and the certificate it rests on is the one in force. A publisher that
        voided the certificate (a deploy, a rollback) need not know about proposals."""
        pending = self.pending_promotions.get(cluster)
        if pending is None or self.stage(cluster) is not Stage.copilot:
            return None
        return pending if self.certificates.get(cluster) == pending.certificate else None

    def hand_hold(self, cluster: str, proposed: Stage) -> str | None:
        """Why a person's hand control keeps ``cluster`` at its stage rather than ``proposed``, or
        None: a stage set by hand is never moved, up or down; a paused cluster (or one of a paused
        process) is never promoted, ``logging -> copilot`` included. The one rule for every
        automatic move: the learning loop's, a first policy's, and a deploy's or rollback's."""
        current = self.stage(cluster)
        if proposed is current:
            return None
        hand = self.manual.get(cluster)
        if hand is not None:
            return f"held: stage set by hand by {hand.by} at {hand.at:%Y-%m-%d %H:%M} ({hand.reason})"
        pause = self.pause_for(cluster)
        if pause is not None and STAGE_ORDER[proposed] > STAGE_ORDER[current]:
            scope, held = pause
            what = "the process" if scope == WHOLE_PROCESS else "the cluster"
            return f"held: {what} is paused by {held.by} ({held.reason})"
        return None

    def with_hand_controls_of(self, current: ServicePointer) -> ServicePointer:
        """This pointer with the pauses and hand-set stages of ``current`` (the one in service)."""
        same = current.paused == self.paused and current.manual == self.manual
        if same and all(self.stage(c) is hand.stage for c, hand in self.manual.items()):
            return self
        stages = dict(self.stages) | {c: hand.stage for c, hand in current.manual.items()}
        return self.model_copy(update={"paused": current.paused, "manual": current.manual, "stages": stages})
