"""Hand controls on the real broker: a running worker follows `pause` and `resume` within a reload
interval (the next decisions are `paused` deferrals, then run again), and `selauto stage set` and
`selauto stage confirm` announce the move on stage.changes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from selective_autonomy.agents.worker import build_worker
from selective_autonomy.cli import app
from selective_autonomy.config import Settings
from selective_autonomy.controls.hand import HandChange
from selective_autonomy.controls.service import HandControls
from selective_autonomy.inference.registry import ModelRegistry
from selective_autonomy.schemas.event_parts import DeferralReason, Stage
from selective_autonomy.schemas.events import StageChanged
from selective_autonomy.store import FeedbackStore, HandControl
from selective_autonomy.streams.consumer import EventConsumer
from selective_autonomy.streams.producer import EventProducer
from selective_autonomy.streams.runner import run_app_until
from tests.integration.decide_support import install_models, read_all, state
from tests.support.promotions import with_proposal

pytestmark = pytest.mark.integration

RELOAD_S = 0.2


@pytest.fixture
def worker_settings(make_settings: Callable[..., Settings], tmp_path: Path) -> Settings:
    settings = make_settings(partitions=1)
    settings = settings.model_copy(
        update={
            "models_dir": tmp_path / "models",
            "worker": settings.worker.model_copy(update={"reload_interval_s": RELOAD_S}),
        }
    )
    install_models(settings.models_dir, {"retail": Stage.selective, "vip": Stage.copilot, "lab": Stage.logging})
    return settings


def wait_until(what: Callable[[], bool], timeout_s: float = 30.0) -> float:
    """Poll ``what`` until it holds; the seconds it took."""
    started = time.monotonic()
    while not what():
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"not reached within {timeout_s} s")
        time.sleep(0.02)
    return time.monotonic() - started


def test_a_running_worker_follows_pause_and_resume(worker_settings: Settings) -> None:
    settings = worker_settings
    worker = build_worker(settings)
    decided = lambda: sum(worker.metrics.outcomes.values())  # noqa: E731
    paused_in_service = lambda: bool(worker.models.current().models["billing"].pointer.paused)  # noqa: E731
    done = threading.Event()
    errors: list[BaseException] = []
    delays: dict[str, float] = {}

    def send(session: str) -> None:
        with EventProducer(settings) as producer:
            producer.send(settings.topics.ui_state, state(session, 0, "retail"), key=session)

    def scenario(controls: HandControls) -> None:
        send("before")
        wait_until(lambda: decided() >= 1)
        controls.pause(HandChange(process_id="billing", reason="incident 42", by="alice"))
        delays["pause"] = wait_until(paused_in_service)
        send("during")
        wait_until(lambda: decided() >= 2)
        controls.resume(HandChange(process_id="billing", reason="incident closed", by="alice"))
        delays["resume"] = wait_until(lambda: not paused_in_service())
        send("after")
        wait_until(lambda: decided() >= 3)

    with FeedbackStore.open(settings.store.resolved_url(settings.data_dir)) as store:
        controls = HandControls(ModelRegistry(settings.models_dir), store)

        def drive() -> None:
            try:
                scenario(controls)
            except BaseException as exc:  # reported by the test thread
                errors.append(exc)
            finally:
                done.set()

        driver = threading.Thread(target=drive, name="hand-controls-scenario")
        driver.start()
        run_app_until(worker.app, done.is_set, timeout_s=120)
        driver.join(10)
        assert not errors, errors
        history = [(h.control, h.scope, h.changed_by) for h in store.hand_controls("billing")]
    assert history == [(HandControl.pause, "*", "alice"), (HandControl.resume, "*", "alice")]
    # The worker reloads every RELOAD_S; a pause is in force for the next decision after that.
    assert delays["pause"] < RELOAD_S + 5 and delays["resume"] < RELOAD_S + 5, delays

    executed, deferred, _ = read_all(settings)
    assert sorted(e.session_id for e in executed) == ["after", "before"]
    [held] = deferred
    assert (held.session_id, held.reason, held.stage) == ("during", DeferralReason.paused, Stage.selective)
    assert "paused for the whole process by alice" in held.detail and "incident 42" in held.detail
    assert held.suggestion is not None and held.threshold == 0.5  # what would have run, for the operator
    assert dict(worker.metrics.deferral_reasons) == {"paused": 1}


def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """What `selauto` run by a person needs to reach this test's broker, topic and models."""
    kafka = settings.kafka
    for name, value in {
        "SELAUTO_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "SELAUTO_KAFKA__PROFILE": kafka.profile.value,
        "SELAUTO_TOPICS__STAGE_CHANGES": settings.topics.stage_changes,
        "SELAUTO_MODELS_DIR": str(settings.models_dir),
        "SELAUTO_DATA_DIR": str(settings.data_dir),
    }.items():
        monkeypatch.setenv(name, value)


def test_stage_set_announces_the_move_on_stage_changes(
    worker_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = worker_settings
    cli_env(settings, monkeypatch)
    result = CliRunner().invoke(
        app,
        [
            "stage",
            "set",
            "copilot",
            "--process",
            "billing",
            "--cluster",
            "retail",
            "--reason",
            "refunds",
            "--by",
            "bob",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "published on stage.changes" in result.stdout and result.stderr == ""
    with EventConsumer(settings, [settings.topics.stage_changes], StageChanged) as consumer:
        [record] = consumer.take(1)
    event = record.event
    assert event is not None and record.key == b"billing/retail"
    assert (event.from_stage, event.to_stage, event.reason) == (
        Stage.selective,
        Stage.copilot,
        "set by hand by bob: refunds",
    )
    pointer = ModelRegistry(settings.models_dir).pointer("billing")
    assert pointer.stage("retail") is Stage.copilot and pointer.manual["retail"].by == "bob"


def test_stage_confirm_promotes_a_proposed_cluster_and_announces_it(
    worker_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = worker_settings
    cli_env(settings, monkeypatch)
    registry = ModelRegistry(settings.models_dir)
    registry.update("billing", lambda p: with_proposal(p, "billing", "vip"))
    confirm = ["stage", "confirm", "--process", "billing", "--cluster", "vip", "--reason", "reviewed", "--by", "ada"]
    result = CliRunner().invoke(app, confirm)
    assert result.exit_code == 0, result.output
    assert "published on stage.changes" in result.stdout and result.stderr == ""
    with EventConsumer(settings, [settings.topics.stage_changes], StageChanged) as consumer:
        [record] = consumer.take(1)
    event = record.event
    assert event is not None and record.key == b"billing/vip"
    assert (event.from_stage, event.to_stage, event.certified_coverage) == (Stage.copilot, Stage.selective, 0.4)
    assert event.reason.startswith("promotion confirmed by ada: reviewed")
    pointer = registry.pointer("billing")
    assert pointer.stage("vip") is Stage.selective and pointer.pending_promotions == {}
    with FeedbackStore.open(settings.store.resolved_url(settings.data_dir)) as store:
        assert [(h.control, h.scope, h.changed_by) for h in store.hand_controls("billing")] == [
            (HandControl.confirm, "vip", "ada")
        ]
