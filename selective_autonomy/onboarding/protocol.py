"""The pydantic models at the boundary of the hand changes: what a caller asks, and what came of it."""

from __future__ import annotations

from pathlib import PurePosixPath

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from selective_autonomy.schemas.event_parts import Stage
from selective_autonomy.schemas.events import StageChanged
from selective_autonomy.store.models import ModelKind, ServiceChange, ServiceChangeKind


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ChangeRequest(_Model):
    """Who asks for a change and why; both are recorded with it."""

    by: str = Field(min_length=1, max_length=255, description="Who makes the change (--by).")
    reason: str = Field(default="", max_length=4000, description="Why (--reason).")

    def says(self, what: str) -> str:
        """``what`` with who did it and why, as stage-change reasons and records read."""
        return f"{what} by {self.by}" + (f": {self.reason}" if self.reason else "")


class ChangeOutcome(_Model):
    """What a hand change did."""

    process_id: str
    kind: ServiceChangeKind
    changed: bool = Field(description="False: what was asked for was already the case; nothing was published.")
    revision: int = Field(description="Revision of the service pointer in service afterwards.")
    policy: str | None = Field(default=None, description="Policy version in service afterwards.")
    critic: str | None = Field(default=None, description="Critic version afterwards; None: policy confidence.")
    voided: list[str] = Field(default_factory=list, description="What the change voided, one line each.")
    stage_changes: list[StageChanged] = Field(default_factory=list)
    held: list[str] = Field(
        default_factory=list, description="Stage moves a pause or a stage set by hand held back, one line each."
    )


class ClusterStage(_Model):
    cluster: str
    stage: Stage
    certified: bool = Field(description="A certificate is in force for the models in service.")


class ProcessSummary(_Model):
    """One line of ``selauto process list``."""

    process_id: str
    schema_version: int
    schema_hash: str
    revision: int
    policy: str | None
    critic: str | None
    thresholds_version: str
    clusters: list[ClusterStage]


class ModelVersionRow(_Model):
    """One artefact in the registry, and when and by whom it went into service last."""

    kind: ModelKind
    version: str
    artefact_kind: str = Field(description="e.g. policy-ngram, policy-embedded, critic-embedded")
    created_at: AwareDatetime
    train_cases: int = 0
    in_service: bool
    deployed_at: AwareDatetime | None = None
    deployed_by: str | None = Field(default=None, description="Who, or 'learning loop' for a version it promoted.")
    how: str = Field(default="", description="deployed, rolled_back or learning loop; empty: never in service")


class PointerRevision(_Model):
    """A revision of the service pointer that changed the models in service."""

    revision: int
    policy: str | None
    critic: str | None
    change: ServiceChange | None = Field(default=None, description="The hand change that published it, if one did.")


class ModelListing(_Model):
    process_id: str
    versions: list[ModelVersionRow]
    history: list[PointerRevision]


def version_of(path: str | None) -> str | None:
    """The version of an artefact path relative to the process directory (``policy/<version>``)."""
    return None if path is None else PurePosixPath(path).name
