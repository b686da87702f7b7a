"""The durable feedback store: what the system suggested, what operators answered, what ran, and
the UI traces operators left on ``ui.state``.

``FeedbackStore.open(url)`` migrates and returns the store; ``default_url(settings.data_dir)`` is
the SQLite file every process of one deployment shares. ``selective_autonomy.learning.evidence``
turns stored feedback into the learning loop's evidence.
"""

from selective_autonomy.store.engine import default_url
from selective_autonomy.store.errors import SchemaNotReady, StoreError, UnknownAction, UnknownModelVersion
from selective_autonomy.store.migration import migrate
from selective_autonomy.store.models import (
    ActionStatus,
    AppliedAction,
    CaseCompletion,
    FeedbackWithContext,
    HandControl,
    HandControlRecord,
    ModelKind,
    ModelVersion,
    ProposalOutcome,
    ProposalRecord,
    RecordedSession,
    RecordedState,
    ServiceChange,
    ServiceChangeKind,
    StageTransition,
    StoreCounts,
)
from selective_autonomy.store.repository import FeedbackStore

__all__ = [
    "ActionStatus",
    "AppliedAction",
    "CaseCompletion",
    "FeedbackStore",
    "FeedbackWithContext",
    "HandControl",
    "HandControlRecord",
    "ModelKind",
    "ModelVersion",
    "ProposalOutcome",
    "ProposalRecord",
    "RecordedSession",
    "RecordedState",
    "SchemaNotReady",
    "ServiceChange",
    "ServiceChangeKind",
    "StageTransition",
    "StoreCounts",
    "StoreError",
    "UnknownAction",
    "UnknownModelVersion",
    "default_url",
    "migrate",
]
