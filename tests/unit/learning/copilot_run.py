"""The offline copilot stage, written into a real (SQLite) feedback store for the learning loop."""

from __future__ import annotations

from collections.abc import Sequence

from selective_autonomy.agents.feedback import proposal_of
from selective_autonomy.inference.registry import ProcessModels
from selective_autonomy.simulator.offline import offline_copilot
from selective_autonomy.store.repository import FeedbackStore
from selective_autonomy.traces.format import Case


def run_copilot(models: ProcessModels, cases: Sequence[Case], store: FeedbackStore) -> int:
    """Defer every step of ``cases``, answer each deferral, store both; return the feedback count."""
    pairs = list(offline_copilot(models, cases))
    store.record_proposals([proposal_of(deferral) for deferral, _ in pairs])
    store.record_feedbacks([feedback for _, feedback in pairs])
    return len(pairs)
