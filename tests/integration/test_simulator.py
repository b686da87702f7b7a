"""The session simulator against the real decide agent on the session broker.

N-gram models trained on the first Helpdesk cases serve the worker; the next cases are replayed as
concurrent live sessions, once in the selective stage and once in the copilot stage.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from selective_autonomy.agents.worker import build_worker
from selective_autonomy.config import Settings
from selective_autonomy.inference.registry import ModelRegistry
from selective_autonomy.schemas.event_parts import Stage, Verdict
from selective_autonomy.schemas.events import CopilotFeedback
from selective_autonomy.simulator.operator_model import HandlingTimeModel
from selective_autonomy.simulator.replay import ReplayConfig, ReplayReport, replay_cases
from selective_autonomy.streams.consumer import EventConsumer
from selective_autonomy.streams.runner import run_app_until
from selective_autonomy.traces import datasets
from selective_autonomy.traces.eventlog import derive_process_schema, iter_cases, read_event_log
from selective_autonomy.traces.mapping import load_mapping
from tests.integration.simulator_support import Slice, install

pytestmark = pytest.mark.integration

TRAIN, REPLAY = 150, 30


@pytest.fixture(scope="module")
def helpdesk() -> Slice:
    try:
        path = datasets.helpdesk_log_path()
    except FileNotFoundError as error:
        pytest.skip(f"Helpdesk log not available here: {error}")
    table = read_event_log(path, load_mapping("helpdesk"), limit_cases=TRAIN + REPLAY)
    cases = list(iter_cases(table))
    return Slice(derive_process_schema(table), cases[:TRAIN], cases[TRAIN:])


def replay_with_worker(settings: Settings, data: Slice) -> ReplayReport:
    """Run the real decide worker in this thread while the replay runs in another."""
    outcome: dict[str, ReplayReport | BaseException] = {}
    done = threading.Event()

    def replay() -> None:
        try:
            outcome["report"] = replay_cases(
                settings,
                data.held_out,
                config=ReplayConfig(concurrency=10, decision_timeout_s=20.0, progress=False),
                handling=HandlingTimeModel.from_cases(data.train),
            )
        except BaseException as error:  # surfaced below, in the test's thread
            outcome["error"] = error
        finally:
            done.set()

    thread = threading.Thread(target=replay, name="replay", daemon=True)
    worker = build_worker(settings)
    thread.start()
    run_app_until(worker.app, done.is_set, timeout_s=50)
    thread.join(timeout=5)
    error = outcome.get("error")
    if isinstance(error, BaseException):
        raise error
    report = outcome.get("report")
    assert isinstance(report, ReplayReport)
    print(report.summary())
    return report


@pytest.fixture
def stage_settings(make_settings: Callable[..., Settings], tmp_path: Path) -> Callable[[Stage, Slice], Settings]:
    def factory(stage: Stage, data: Slice) -> Settings:
        settings = make_settings(partitions=2).model_copy(update={"models_dir": tmp_path / f"models-{stage.value}"})
        install(settings.models_dir, data, stage)
        return settings

    return factory


def feedback_on_topic(settings: Settings) -> list[CopilotFeedback]:
    with EventConsumer(settings, [settings.topics.copilot_feedback], CopilotFeedback) as consumer:
        return [r.event for r in consumer.iterate(idle_timeout_s=1.0) if r.event is not None]


def test_selective_replay_accounts_for_every_step(
    helpdesk: Slice, stage_settings: Callable[[Stage, Slice], Settings]
) -> None:
    settings = stage_settings(Stage.selective, helpdesk)
    report = replay_with_worker(settings, helpdesk)
    steps = sum(len(case.steps) for case in helpdesk.held_out)
    assert report.sessions == report.sessions_completed == REPLAY
    assert report.stalled_sessions == 0
    assert report.steps == report.steps_decided == steps
    assert report.steps_executed + report.steps_deferred == steps
    assert report.steps_executed > 0 and report.steps_deferred > 0  # the gate both executes and defers here
    assert report.feedback == report.steps_deferred == sum(report.deferrals_by_reason.values())
    assert set(report.deferrals_by_reason) <= {"below_threshold"}
    assert report.executed_correct + report.automation_errors == report.steps_executed
    assert report.operator_time_s <= report.baseline_time_s
    assert report.sessions_unattended <= report.sessions_completed
    feedback = feedback_on_topic(settings)
    assert len(feedback) == report.feedback
    assert len({f.deferral_id for f in feedback}) == len(feedback)


def test_copilot_replay_collects_feedback_on_every_step(
    helpdesk: Slice, stage_settings: Callable[[Stage, Slice], Settings]
) -> None:
    settings = stage_settings(Stage.copilot, helpdesk)
    report = replay_with_worker(settings, helpdesk)
    steps = sum(len(case.steps) for case in helpdesk.held_out)
    assert report.stalled_sessions == 0 and report.sessions_completed == REPLAY
    assert report.steps_executed == 0 and report.steps_deferred == report.feedback == steps
    assert report.deferrals_by_reason == {"copilot_stage": steps}
    assert report.automation_rate == 0.0 and report.coverage == 0.0
    verdicts = report.feedback_by_verdict
    assert sum(verdicts.values()) == steps and verdicts.get(Verdict.accepted.value, 0) > 0
    feedback = feedback_on_topic(settings)
    assert len(feedback) == steps
    assert all(f.deferral_id and f.session_id.startswith("sim-") for f in feedback)


def test_offline_replay_reports_what_the_live_replay_reports(
    helpdesk: Slice, stage_settings: Callable[[Stage, Slice], Settings]
) -> None:
    """The offline replay (decision engine called directly, used by benchmarks) matches the live
    replay through the broker and the real worker, for the same models and cases."""
    from selective_autonomy.simulator.offline import offline_replay

    settings = stage_settings(Stage.selective, helpdesk)
    live = replay_with_worker(settings, helpdesk)
    models = ModelRegistry(settings.models_dir).load(helpdesk.schema.process_id)
    offline = offline_replay(models, helpdesk.held_out, handling=HandlingTimeModel.from_cases(helpdesk.train))
    for name in (
        "sessions",
        "steps",
        "steps_executed",
        "steps_deferred",
        "executed_correct",
        "sessions_unattended",
        "feedback_by_verdict",
        "deferrals_by_reason",
    ):
        assert getattr(offline, name) == getattr(live, name), name
    assert offline.operator_time_s == pytest.approx(live.operator_time_s)
    assert offline.baseline_time_s == pytest.approx(live.baseline_time_s)
