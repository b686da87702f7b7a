"""`selauto stage|pause|resume` as a person runs them: a models directory and a SQLite store in a
temporary folder, and a list in place of the broker (unit tests make no network calls)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from selective_autonomy.cli import app
from selective_autonomy.controls import service
from selective_autonomy.errors import BrokerError
from selective_autonomy.inference.registry import ModelRegistry, ServicePointer
from selective_autonomy.schemas.event_parts import Stage
from selective_autonomy.schemas.events import StageChanged
from selective_autonomy.store import FeedbackStore, HandControl, default_url
from tests.factories import BILLING as SCHEMA
from tests.support.promotions import with_proposal

runner = CliRunner()


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModelRegistry:
    registry = ModelRegistry(tmp_path / "models")
    registry.save_schema(SCHEMA)
    registry.publish("billing", ServicePointer(policy="policy/v1", stages={"retail": Stage.selective}))
    monkeypatch.setenv("SELAUTO_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("SELAUTO_DATA_DIR", str(tmp_path))
    return registry


@pytest.fixture
def published(monkeypatch: pytest.MonkeyPatch) -> list[StageChanged]:
    """What `stage set` sends to stage.changes."""
    sent: list[StageChanged] = []
    monkeypatch.setattr(service, "kafka_stage_publisher", lambda settings, timeout_s: sent.extend)
    return sent


@pytest.fixture
def store(tmp_path: Path, registry: ModelRegistry) -> Iterator[FeedbackStore]:
    with FeedbackStore.open(default_url(tmp_path)) as opened:
        yield opened


def selauto(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_stage_set_holds_the_stage_records_who_when_why_and_publishes_the_move(
    registry: ModelRegistry, published: list[StageChanged], store: FeedbackStore
) -> None:
    code, out, err = selauto(
        "stage",
        "set",
        "copilot",
        "--process",
        "billing",
        "--cluster",
        "retail",
        "--reason",
        "refunds wrong",
        "--by",
        "alice",
    )
    assert code == 0, err
    assert "billing/retail: selective -> copilot, held by hand" in out and "published on stage.changes" in out
    pointer = registry.pointer("billing")
    assert pointer.stage("retail") is Stage.copilot
    assert (pointer.manual["retail"].by, pointer.manual["retail"].reason) == ("alice", "refunds wrong")
    [event] = published
    assert (event.from_stage, event.to_stage) == (Stage.selective, Stage.copilot)
    assert event.reason == "set by hand by alice: refunds wrong"
    [move] = store.stage_history("billing", "retail")
    assert (move.to_stage, move.changed_by, move.reason) == (Stage.copilot, "alice", event.reason)
    [control] = store.hand_controls("billing")
    assert (control.control, control.scope, control.stage, control.changed_by) == (
        HandControl.stage,
        "retail",
        Stage.copilot,
        "alice",
    )
    # Set again to the same stage: a new hold (and its history), no move, nothing published.
    code, out, _ = selauto("stage", "set", "copilot", "-p", "billing", "--cluster", "retail", "--reason", "still")
    assert code == 0 and "stays copilot" in out and len(published) == 1
    assert len(store.hand_controls("billing")) == 2 and len(store.stage_history("billing", "retail")) == 1


def test_a_stage_change_the_broker_does_not_take_stays_in_force_with_a_warning(
    registry: ModelRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreachable(changes: list[StageChanged]) -> None:
        raise BrokerError("1 records were not delivered within 5.0 s")

    monkeypatch.setattr(service, "kafka_stage_publisher", lambda settings, timeout_s: unreachable)
    code, out, err = selauto(
        "stage", "set", "copilot", "--process", "billing", "--cluster", "vip", "--reason", "new form", "--by", "bob"
    )
    assert code == 0 and "vip: logging -> copilot" in out
    assert "warning: the change is in force" in err and "not delivered within 5.0 s" in err
    assert registry.pointer("billing").stage("vip") is Stage.copilot
    # --no-publish does not try at all.
    monkeypatch.setattr(service, "kafka_stage_publisher", pytest.fail)
    code, _, err = selauto(
        "stage", "set", "logging", "-p", "billing", "--cluster", "vip", "--reason", "x", "--no-publish"
    )
    assert code == 0 and err == "" and registry.pointer("billing").stage("vip") is Stage.logging


def test_pause_and_resume_the_whole_process_or_one_cluster(registry: ModelRegistry, store: FeedbackStore) -> None:
    code, out, _ = selauto("pause", "--process", "billing", "--reason", "incident 42", "--by", "alice")
    assert code == 0 and "billing/*: paused" in out
    code, out, _ = selauto("pause", "-p", "billing", "--cluster", "retail", "--reason", "refund review", "--by", "bob")
    assert code == 0
    pointer = registry.pointer("billing")
    assert set(pointer.paused) == {"*", "retail"} and pointer.paused["*"].by == "alice"
    # Pausing again keeps the first pause and records nothing.
    code, out, _ = selauto("pause", "-p", "billing", "--reason", "again", "--by", "carol")
    assert code == 0 and "already paused by alice" in out and registry.pointer("billing").paused["*"].by == "alice"
    # Resume lifts exactly the scope named.
    code, out, _ = selauto("resume", "-p", "billing", "--reason", "incident closed", "--by", "alice")
    assert code == 0 and "billing/*: resumed; still paused: retail" in out
    code, _, err = selauto("resume", "-p", "billing", "--reason", "twice")
    assert code == 1 and "the whole process is not paused (paused: retail)" in err
    code, _, _ = selauto("resume", "-p", "billing", "--cluster", "retail", "--reason", "reviewed", "--by", "bob")
    assert code == 0 and registry.pointer("billing").paused == {}
    history = [(h.control, h.scope, h.changed_by, h.reason) for h in store.hand_controls("billing")]
    assert history == [
        (HandControl.pause, "*", "alice", "incident 42"),
        (HandControl.pause, "retail", "bob", "refund review"),
        (HandControl.resume, "*", "alice", "incident closed"),
        (HandControl.resume, "retail", "bob", "reviewed"),
    ]


def test_release_gives_the_stage_back_and_show_lists_it_all(registry: ModelRegistry, published: list) -> None:
    selauto("stage", "set", "copilot", "-p", "billing", "--cluster", "vip", "--reason", "new agents", "--by", "alice")
    selauto("pause", "-p", "billing", "--cluster", "retail", "--reason", "audit", "--by", "bob")
    code, out, _ = selauto("stage", "show", "-p", "billing")
    assert code == 0
    assert "retail: selective (no certificate; PAUSED by bob: audit)" in out
    assert "vip: copilot (no certificate; held by hand by alice)" in out
    assert "set copilot vip by alice: new agents" in out and "pause retail by bob: audit" in out
    assert "vip: - -> copilot (alice): set by hand by alice: new agents" in out
    code, out, _ = selauto("stage", "release", "-p", "billing", "--cluster", "vip", "--reason", "trained", "--by", "al")
    assert (
        code == 0 and "stage copilot is the learning loop's again" in out and registry.pointer("billing").manual == {}
    )
    code, _, err = selauto("stage", "release", "-p", "billing", "--cluster", "vip", "--reason", "twice")
    assert code == 1 and "not held by hand" in err
    # `selauto status` says what is held and paused too.
    code, out, _ = selauto("status")
    assert code == 0 and "retail: selective" in out and "PAUSED (cluster: audit)" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["pause", "-p", "nope", "--reason", "x"], "no process 'nope'"),
        (["pause", "-p", "billing", "--cluster", "eu", "--reason", "x"], "no business cluster 'eu'"),
        (["pause", "-p", "billing", "--cluster", "*", "--reason", "x"], "leave the cluster out for the whole process"),
        (["pause", "-p", "billing", "--reason", ""], "reason"),
        (["pause", "-p", "../etc", "--reason", "x"], "process_id"),
        (["stage", "set", "copilot", "-p", "billing", "--cluster", "eu", "--reason", "x"], "no business cluster"),
    ],
)
def test_what_cannot_be_done_is_refused_and_changes_nothing(
    registry: ModelRegistry, published: list, args: list[str], message: str
) -> None:
    before = registry.pointer("billing")
    code, _, err = selauto(*args)
    assert code == 1 and message in err
    assert registry.pointer("billing") == before and published == []


def test_by_defaults_to_the_login_name(registry: ModelRegistry, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("getpass.getuser", lambda: "ops-oncall")
    assert selauto("pause", "-p", "billing", "--reason", "x")[0] == 0
    assert registry.pointer("billing").paused["*"].by == "ops-oncall"


def test_hand_controls_of_a_cluster_the_schema_dropped_can_still_be_lifted(registry: ModelRegistry) -> None:
    selauto("stage", "set", "copilot", "-p", "billing", "--cluster", "vip", "--reason", "new agents", "--by", "alice")
    selauto("pause", "-p", "billing", "--cluster", "vip", "--reason", "audit", "--by", "bob")
    # `selauto process add --replace` with a schema without vip keeps both (hand controls win).
    registry.save_schema(
        SCHEMA.model_copy(update={"business_clusters": [c for c in SCHEMA.business_clusters if c.id != "vip"]})
    )
    code, _, err = selauto("pause", "-p", "billing", "--cluster", "vip", "--reason", "again")
    assert code == 1 and "no business cluster 'vip'" in err
    assert selauto("resume", "-p", "billing", "--cluster", "vip", "--reason", "gone", "--by", "bob")[0] == 0
    assert selauto("stage", "release", "-p", "billing", "--cluster", "vip", "--reason", "gone", "--by", "bob")[0] == 0
    pointer = registry.pointer("billing")
    assert pointer.paused == {} and pointer.manual == {}


# -- confirming a promotion the learning loop proposed ----------------------------------------------


def test_stage_confirm_promotes_on_the_proposed_certificate_records_and_publishes_it(
    registry: ModelRegistry, published: list[StageChanged], store: FeedbackStore
) -> None:
    registry.update("billing", lambda p: with_proposal(p, "billing", "vip"))
    # show and status list the proposal and the command that confirms it.
    code, out, _ = selauto("stage", "show", "-p", "billing")
    assert code == 0 and "vip: copilot" in out
    assert "promotion to selective proposed 2026-03-02 10:00, waiting for confirmation: certified thresholds" in out
    assert "selauto stage confirm --process billing --cluster vip" in out
    code, out, _ = selauto("status")
    assert code == 0 and "promotion to selective proposed 2026-03-02 10:00" in out

    code, out, err = selauto(
        "stage", "confirm", "--process", "billing", "--cluster", "vip", "--reason", "reviewed", "--by", "alice"
    )
    assert code == 0, err
    assert "billing/vip: copilot -> selective, on the certificate of 2026-03-02 09:00" in out
    assert "published on stage.changes" in out
    pointer = registry.pointer("billing")
    assert pointer.stage("vip") is Stage.selective and pointer.pending_promotions == {}
    assert pointer.thresholds.for_cluster("billing", "vip") == {"billing/vip/auto/lookup_order": 0.8}
    assert pointer.manual == {}  # the loop's stage again: it may demote it
    [event] = published
    assert (event.from_stage, event.to_stage, event.certified_coverage) == (Stage.copilot, Stage.selective, 0.4)
    assert event.reason.startswith("promotion confirmed by alice: reviewed (certified thresholds cover 40.0%")
    [move] = store.stage_history("billing", "vip")
    assert (move.to_stage, move.changed_by, move.reason) == (Stage.selective, "alice", event.reason)
    [control] = store.hand_controls("billing")
    assert (control.control, control.scope, control.stage, control.changed_by, control.reason) == (
        HandControl.confirm,
        "vip",
        Stage.selective,
        "alice",
        "reviewed",
    )
    code, out, _ = selauto("stage", "show", "-p", "billing")
    assert "confirmed the promotion of vip by alice: reviewed" in out and "waiting for confirmation" not in out

    # Nothing pending any more: a clear error, and nothing changes.
    code, _, err = selauto("stage", "confirm", "-p", "billing", "--cluster", "vip")
    assert code == 1 and "no promotion of cluster 'vip' is pending: the cluster is in selective, not copilot" in err
    registry.update("billing", lambda p: p.model_copy(update={"stages": {**p.stages, "retail": Stage.copilot}}))
    code, _, err = selauto("stage", "confirm", "-p", "billing", "--cluster", "retail")
    assert code == 1 and "no promotion of cluster 'retail' is pending: none was proposed" in err
    assert len(published) == 1 and len(store.hand_controls("billing")) == 1


def test_a_paused_cluster_cannot_be_confirmed_until_resumed(
    registry: ModelRegistry, published: list[StageChanged], store: FeedbackStore
) -> None:
    registry.update("billing", lambda p: with_proposal(p, "billing", "vip"))
    selauto("pause", "-p", "billing", "--reason", "incident 42", "--by", "bob")
    before = registry.pointer("billing")
    code, _, err = selauto("stage", "confirm", "-p", "billing", "--cluster", "vip", "--by", "alice")
    assert code == 1
    assert "cluster 'vip' cannot be promoted while the whole process is paused by bob (incident 42)" in err
    assert registry.pointer("billing") == before and published == []
    assert [h.control for h in store.hand_controls("billing")] == [HandControl.pause]
    # The proposal stays for after the pause.
    selauto("resume", "-p", "billing", "--reason", "closed", "--by", "bob")
    assert selauto("stage", "confirm", "-p", "billing", "--cluster", "vip", "--by", "alice")[0] == 0
    assert registry.pointer("billing").stage("vip") is Stage.selective


def test_a_proposal_whose_certificate_was_replaced_cannot_be_confirmed(registry: ModelRegistry) -> None:
    registry.update("billing", lambda p: with_proposal(p, "billing", "vip"))
    # As a deploy does: the certificates go, the proposal is left behind and void.
    registry.update("billing", lambda p: p.model_copy(update={"certificates": {}}))
    code, _, err = selauto("stage", "confirm", "-p", "billing", "--cluster", "vip")
    assert code == 1 and "the certificate it rested on was replaced or voided since" in err
    assert registry.pointer("billing").stage("vip") is Stage.copilot
