"""A worker runs the agents its role asks for: deciders scale out, one learner runs the loop."""

from __future__ import annotations

from pathlib import Path

import pytest

from selective_autonomy.agents.worker import build_worker
from selective_autonomy.config import Settings, WorkerSettings


@pytest.mark.parametrize(
    ("role", "agents", "learning"),
    [
        ({}, {"decide", "record_proposals", "record_feedback"}, True),
        ({"feedback": False, "learning": False}, {"decide"}, False),
        ({"decide": False}, {"record_proposals", "record_feedback"}, True),
    ],
)
def test_roles(tmp_path: Path, role: dict[str, bool], agents: set[str], learning: bool) -> None:
    settings = Settings(data_dir=tmp_path, models_dir=tmp_path / "models", worker=WorkerSettings(**role))
    worker = build_worker(settings)
    names = {agent.name.rsplit(".", 1)[-1] for agent in worker.app.agents.values()}
    assert names == agents
    assert (worker.feedback is not None and worker.feedback.scheduler is not None) is learning
