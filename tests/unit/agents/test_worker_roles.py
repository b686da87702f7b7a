"""A worker runs the agents its role asks for: deciders scale out, one learner runs the loop."""

from __future__ import annotations

from pathlib import Path

import pytest

from selective_autonomy.agents.worker import NO_LAG_ON_TANSU, build_worker, consumed_topics
from selective_autonomy.config import BrokerProfile, Settings, WorkerSettings


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
    # The trace recorder goes with the store (the feedback role) and reads ui.state in a group of its
    # own: no faust agent on ui.state beside the decide agent (the learner must not take its partitions).
    assert (worker.feedback is not None and worker.feedback.traces is not None) is ("record_feedback" in agents)


def test_trace_recording_can_be_switched_off(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, models_dir=tmp_path / "models", worker=WorkerSettings(traces=False))
    worker = build_worker(settings)
    assert worker.feedback is not None and worker.feedback.traces is None


def test_consumer_lag_is_read_only_where_the_broker_reports_it_truthfully(tmp_path: Path) -> None:
    base = Settings(data_dir=tmp_path, models_dir=tmp_path / "models")
    on_kafka = build_worker(base)
    assert on_kafka.metrics.consumer_lag_note is None
    tansu = base.kafka.model_copy(update={"profile": BrokerProfile.tansu})
    on_tansu = build_worker(base.model_copy(update={"kafka": tansu}))
    assert on_tansu.metrics.consumer_lag_note == NO_LAG_ON_TANSU
    assert on_tansu.metrics.snapshot()["consumer_lag"] == {}


def test_lag_covers_the_topics_of_the_worker_role(tmp_path: Path) -> None:
    topics = Settings().topics
    decider = Settings(worker=WorkerSettings(feedback=False, learning=False))
    learner = Settings(worker=WorkerSettings(decide=False))
    assert consumed_topics(decider) == [topics.ui_state]
    assert consumed_topics(learner) == [topics.operator_deferrals, topics.copilot_feedback]
