"""Onboarding on the real broker: a ``selauto worker`` started with a process that has no model
(added by ``selauto process add``) decides with a policy deployed by ``selauto models deploy``
within its reload interval, with the next one after it, and goes back with ``selauto models
rollback``; the deploy's stage changes arrive on ``stage.changes``."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from selective_autonomy.cli import app
from selective_autonomy.config import Settings
from selective_autonomy.schemas.event_parts import DeferralReason, Stage, UIState
from selective_autonomy.schemas.events import OperatorDeferral, StageChanged, UIStateChanged
from selective_autonomy.store import FeedbackStore, ServiceChangeKind, default_url
from selective_autonomy.streams.broker import free_port
from selective_autonomy.streams.consumer import EventConsumer
from selective_autonomy.streams.producer import EventProducer
from selective_autonomy.traces.format import write_cases
from tests.factories import BILLING_MINIMAL as SCHEMA
from tests.factories import cases, write_schema
from tests.integration.reliability.helpers import WorkerProcess, worker_env

pytestmark = pytest.mark.integration

RELOAD_INTERVAL_S = 1.0
# From the pointer's publication to the first state decided with it: the reload interval, a send
# period (one state every 0.5 s), and slack for a machine shared with other test runs (measured:
# 0.5 to 1.0 s in all).
PICKUP_MARGIN_S = 4.0

runner = CliRunner()


def selauto(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


class Decisions:
    """Sends one new session's first state at a time and reads what the worker decided for it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.reader = EventConsumer(settings, [settings.topics.operator_deferrals], OperatorDeferral)
        self.decided: dict[str, OperatorDeferral] = {}
        self.sent_at: dict[str, float] = {}
        self._names = (f"s{i:04d}" for i in itertools.count())

    def send(self, producer: EventProducer) -> None:
        session = next(self._names)
        state = UIStateChanged(
            session_id=session,
            process_id=SCHEMA.process_id,
            business_cluster="retail",
            state_version=0,
            ui_state=UIState(fields={"plan": "pro"}),
        )
        producer.send(self.settings.topics.ui_state, state, key=session)
        producer.flush()
        self.sent_at[session] = time.monotonic()

    def until(self, check: Callable[[OperatorDeferral], bool], worker: WorkerProcess, what: str) -> OperatorDeferral:
        """Keep sending states until the worker decides one as ``check`` wants; that decision."""
        deadline = time.monotonic() + 90
        with EventProducer(self.settings) as producer:
            while time.monotonic() < deadline:
                self.send(producer)
                stop = time.monotonic() + 0.5
                while time.monotonic() < stop:
                    received = self.reader.poll(0.1)
                    if received is None or received.event is None:
                        continue
                    self.decided[received.event.session_id] = received.event
                    if check(received.event):
                        return received.event
                if not worker.alive:
                    break
        raise AssertionError(f"no decision {what} within 90 s\n{worker.log_tail()}")

    def close(self) -> None:
        self.reader.close()


@pytest.fixture
def onboarding(
    make_settings: Callable[..., Settings], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Settings, WorkerProcess, Decisions]]:
    settings = make_settings(partitions=1).model_copy(update={"models_dir": tmp_path / "models"})
    environment = worker_env(settings, free_port())
    for key, value in environment.items():  # the CLI under test reads the same settings as the worker
        if key.startswith("SELAUTO_"):
            monkeypatch.setenv(key, value)
    monkeypatch.delenv("SELAUTO_CONFIG_FILE", raising=False)
    selauto("process", "add", str(write_schema(tmp_path / "billing.yaml")), "--by", "ada", "--reason", "new desk")
    worker = WorkerProcess(
        settings, tmp_path / "worker.log", env={"SELAUTO_WORKER__RELOAD_INTERVAL_S": str(RELOAD_INTERVAL_S)}
    ).start()
    decisions = Decisions(settings)
    try:
        yield settings, worker, decisions
    finally:
        decisions.close()
        worker.kill()


def train(tmp_path: Path, settings: Settings, n: int) -> Path:
    """``selauto train policy`` on ``n`` cases, against the schema as registered."""
    traces, out = tmp_path / f"cases-{n}.jsonl", tmp_path / f"trained-{n}"
    write_cases(traces, cases(n))
    schema = settings.models_dir / SCHEMA.process_id / "schema.yaml"
    selauto("train", "policy", "--kind", "ngram", "--schema", str(schema), "--cases", str(traces), "--out", str(out))
    [artefact] = out.iterdir()
    return artefact


def test_a_worker_picks_up_deployed_policies_and_a_rollback(
    onboarding: tuple[Settings, WorkerProcess, Decisions], tmp_path: Path
) -> None:
    settings, worker, decisions = onboarding
    first, second = train(tmp_path, settings, 12), train(tmp_path, settings, 6)
    assert first.name != second.name

    # An empty process: the worker knows it and hands its states to an operator.
    before = decisions.until(lambda d: True, worker, "for the process with no model")
    assert before.reason is DeferralReason.model_unavailable and before.policy_version is None

    def deploy_and_wait(args: list[str], version: str) -> OperatorDeferral:
        selauto(*args)
        published = time.monotonic()
        decided = decisions.until(lambda d: d.policy_version == version, worker, f"with {version}")
        # The first state decided with it was sent at most a reload interval (and a round trip)
        # after the pointer changed: the worker did not need a restart.
        assert decisions.sent_at[decided.session_id] - published <= RELOAD_INTERVAL_S + PICKUP_MARGIN_S
        return decided

    deploy = ["models", "deploy", "--process", "billing", "--by", "ada"]
    decided = deploy_and_wait([*deploy, "--policy", str(first), "--reason", "first policy"], first.name)
    assert decided.reason is DeferralReason.copilot_stage  # logging -> copilot: a policy is in service
    assert decided.suggestion is not None and decided.suggestion.action_type == "lookup_order"
    deploy_and_wait([*deploy, "--policy", str(second)], second.name)
    deploy_and_wait(["models", "rollback", "--process", "billing", "--reason", "second is worse"], first.name)

    with EventConsumer(settings, [settings.topics.stage_changes], StageChanged) as consumer:
        changes = [r.event for r in consumer.take(2)]
    assert {(c.business_cluster, c.from_stage, c.to_stage) for c in changes if c} == {
        ("retail", Stage.logging, Stage.copilot),
        ("vip", Stage.logging, Stage.copilot),
    }
    with FeedbackStore.open(default_url(settings.data_dir)) as store:
        assert [c.kind for c in store.service_changes("billing")] == [
            ServiceChangeKind.process_added,
            ServiceChangeKind.deployed,
            ServiceChangeKind.deployed,
            ServiceChangeKind.rolled_back,
        ]
    assert worker.alive
