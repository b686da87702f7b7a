"""The feedback agent on the real broker: a copilot-stage replay's deferrals and feedback land in
the store joined, the learning loop runs from the agent, certifies, publishes a new service pointer
and a StageChanged event, and the worker hot-reloads into the selective stage."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from selective_autonomy.agents.worker import build_worker
from selective_autonomy.config import LearningSettings, Settings
from selective_autonomy.inference.registry import ModelRegistry
from selective_autonomy.learning.apply import LearningReport
from selective_autonomy.schemas.event_parts import Stage
from selective_autonomy.schemas.events import StageChanged
from selective_autonomy.simulator.operator_model import HandlingTimeModel
from selective_autonomy.simulator.replay import ReplayConfig, replay_cases
from selective_autonomy.store import FeedbackStore
from selective_autonomy.streams.consumer import EventConsumer
from selective_autonomy.streams.runner import run_app_until
from selective_autonomy.traces import datasets
from selective_autonomy.traces.eventlog import derive_process_schema, iter_cases, read_event_log
from selective_autonomy.traces.mapping import load_mapping
from tests.integration.simulator_support import CLUSTER, Slice, install

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TRAIN, REPLAY = 300, 150


@pytest.fixture(scope="module")
def helpdesk_slice() -> Slice:
    table = read_event_log(datasets.helpdesk_log_path(), load_mapping("helpdesk"), limit_cases=TRAIN + REPLAY)
    cases = list(iter_cases(table))
    return Slice(derive_process_schema(table), cases[:TRAIN], cases[TRAIN:])


def test_feedback_agent_stores_learns_promotes_and_worker_reloads(
    helpdesk_slice: Slice, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    steps = sum(len(case.steps) for case in helpdesk_slice.held_out)
    learning = LearningSettings(
        retrain_every_feedback=steps,
        target_precision=0.85,
        confidence=0.8,
        min_critic_examples=150,
        # 150 sessions give 20-40 certifying steps per action type: enough for the easy ones.
        min_calibration_samples=20,
    )
    settings = make_settings(partitions=2).model_copy(
        update={
            "models_dir": tmp_path / "models",
            "learning": learning,
            "worker": make_settings(create=False).worker.model_copy(update={"reload_interval_s": 0.5}),
        }
    )
    install(settings.models_dir, helpdesk_slice, Stage.copilot)
    process = helpdesk_slice.schema.process_id

    done = threading.Event()
    reports: list[object] = []

    def replay() -> None:
        try:
            reports.append(
                replay_cases(
                    settings,
                    helpdesk_slice.held_out,
                    config=ReplayConfig(concurrency=20, decision_timeout_s=30.0, progress=False),
                    handling=HandlingTimeModel.from_cases(helpdesk_slice.train),
                )
            )
        finally:
            done.set()

    worker = build_worker(settings)
    assert worker.feedback is not None and worker.feedback.scheduler is not None
    scheduler = worker.feedback.scheduler
    learned: list[LearningReport] = []
    scheduler.listeners.append(lambda report: learned.append(report) if report.retrained else None)
    threading.Thread(target=replay, daemon=True).start()

    feedback_agent = worker.feedback

    def finished() -> bool:
        reloaded = worker.models.versions().get(process, {}).get("revision", 0)
        # The deferrals and the answers are consumed by two agents from two topics: the store
        # joins them once both have caught up, which the deferrals' agent may do last.
        recorded = feedback_agent.proposals >= steps
        return done.is_set() and recorded and bool(learned) and not scheduler.running and int(reloaded) >= 2

    run_app_until(worker.app, finished, timeout_s=150)
    assert reports, "the replay did not finish"

    with FeedbackStore.open(settings.store.resolved_url(settings.data_dir)) as store:
        rows = store.feedback_with_context(process_id=process)
        counts = store.counts(process)
        assert len(rows) == steps
        assert all(row.context is not None for row in rows)  # every answer joined to its deferral
        assert counts.feedback_without_proposal == 0
        assert store.latest_stage(process, CLUSTER) is Stage.selective

    [learning_report] = learned
    assert learning_report.calibration is not None, learning_report.notes
    assert [(c.from_stage, c.to_stage) for c in learning_report.stage_changes] == [(Stage.copilot, Stage.selective)]
    pointer = ModelRegistry(settings.models_dir).pointer(process)
    assert pointer.stage(CLUSTER) is Stage.selective and pointer.certificates[CLUSTER].keys
    # The critic was chosen among candidates on evidence the certificate did not use.
    assert any("critic chosen on the selection split" in note for note in learning_report.notes), learning_report.notes
    assert worker.models.versions()[process]["critic"] == learning_report.critic_version  # hot-reloaded
    with EventConsumer(settings, [settings.topics.stage_changes], StageChanged) as consumer:
        [change] = consumer.take(1)
    assert change.event is not None and change.event.to_stage is Stage.selective
