"""What a learning run takes in and hands out: the records between the loop, the plan and apply.

Split from :mod:`plan` (the rules that turn one into the other) because the loop builds a
:class:`LearningInput`, and :mod:`apply` and :mod:`first_policy` publish or make a
:class:`LearningPlan`, without needing those rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from selective_autonomy.inference.artefact import ArtefactMeta
from selective_autonomy.inference.registry import ProcessModels, ServicePointer
from selective_autonomy.learning.calibration import CalibrationReport
from selective_autonomy.learning.evidence import CriticExample, MonitorOutcome, PolicyExample
from selective_autonomy.learning.monitor import MonitorReading
from selective_autonomy.learning.stages import StageDecision
from selective_autonomy.schemas.process import ProcessSchema
from selective_autonomy.store.models import ModelKind


@dataclass(frozen=True)
class LearningInput:
    """The evidence of one run, gathered by the loop (newest window of feedback, oldest first).
    ``models`` is needed to retrain; a monitor-only run needs the schema and pointer alone."""

    schema: ProcessSchema
    pointer: ServicePointer
    models: ProcessModels | None = None
    examples: Sequence[CriticExample] = ()
    policy_examples: Sequence[PolicyExample] = ()
    outcomes: Sequence[MonitorOutcome] = ()
    critic_fitted_until: datetime | None = None
    feedback_read: int = 0
    planned_at: datetime | None = field(
        default=None,
        metadata={"doc": "the loop's clock: when a promotion is proposed; None: the time its certificate was issued"},
    )


@dataclass(frozen=True)
class NewArtefact:
    kind: ModelKind
    model: Any = field(metadata={"doc": "has save(directory, meta)"})
    meta: ArtefactMeta
    path: str = field(metadata={"doc": "relative to the process directory"})


@dataclass(frozen=True)
class LearningPlan:
    process_id: str
    previous: ServicePointer
    pointer: ServicePointer
    artefacts: list[NewArtefact] = field(default_factory=list)
    calibration: CalibrationReport | None = None
    monitor: dict[str, MonitorReading] = field(default_factory=dict)
    decisions: dict[str, StageDecision] = field(default_factory=dict)
    lifts: dict[str, float] = field(default_factory=dict)
    held: dict[str, StageDecision] = field(default_factory=dict, metadata={"doc": "moves a hand control held back"})
    proposed: dict[str, StageDecision] = field(
        default_factory=dict, metadata={"doc": "promotions left to a supervisor (learning.promotion = confirmed)"}
    )
    critic: str = "unchanged"
    critic_version: str = ""
    policy_version: str = ""
    examples: int = 0
    notes: list[str] = field(default_factory=list)
