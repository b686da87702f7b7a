"""``selauto process`` and ``selauto models`` as a user runs them: CliRunner on a tmp models
directory and a SQLite store, real artefacts, and the stage-change events collected instead of
sent (unit tests make no network calls; tests/integration/test_onboarding.py sends them)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner, Result

from selective_autonomy.cli import app
from selective_autonomy.config import Settings
from selective_autonomy.inference.registry import ModelRegistry, ServicePointer
from selective_autonomy.inference.thresholds import Thresholds
from selective_autonomy.schemas.event_parts import Stage
from selective_autonomy.schemas.events import StageChanged
from selective_autonomy.schemas.process import UIField
from selective_autonomy.store import FeedbackStore, ModelKind, ServiceChangeKind, default_url
from tests.factories import BILLING_MINIMAL as SCHEMA
from tests.factories import write_schema
from tests.unit.onboarding.support import CERTIFICATE, critic_artefact, ngram_artefact

runner = CliRunner()


@dataclass
class Place:
    """Where the commands under test keep things, and what they tried to send."""

    root: Path
    sent: list[StageChanged] = field(default_factory=list)

    @property
    def registry(self) -> ModelRegistry:
        return ModelRegistry(self.root / "models")

    def store(self) -> FeedbackStore:
        return FeedbackStore.open(default_url(self.root / "data"))

    def run(self, *args: str) -> Result:
        return runner.invoke(app, list(args))

    def ok(self, *args: str) -> str:
        result = self.run(*args)
        assert result.exit_code == 0, result.output
        return result.output


@pytest.fixture
def place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Place:
    monkeypatch.delenv("SELAUTO_CONFIG_FILE", raising=False)
    monkeypatch.setenv("SELAUTO_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("SELAUTO_DATA_DIR", str(tmp_path / "data"))
    found = Place(tmp_path)

    def collect(settings: Settings, changes: Sequence[StageChanged]) -> str | None:
        found.sent.extend(changes)
        return None

    monkeypatch.setattr("selective_autonomy.onboarding.cli.publish_stage_changes", collect)
    return found


@pytest.fixture
def added(place: Place) -> Place:
    place.ok("process", "add", str(write_schema(place.root / "schema.yaml")), "--by", "ada", "--reason", "new desk")
    return place


# process add / list ---------------------------------------------------------------------------


def test_add_registers_the_schema_in_logging_and_records_who_and_why(added: Place) -> None:
    registry = added.registry
    assert registry.processes() == ["billing"] and registry.schema("billing") == SCHEMA
    pointer = registry.pointer("billing")
    assert pointer.policy is None and pointer.revision == 1
    assert pointer.stage("retail") is Stage.logging and pointer.stage("vip") is Stage.logging
    with added.store() as store:
        [change] = store.service_changes("billing")
        assert (change.kind, change.changed_by, change.reason, change.revision) == (
            ServiceChangeKind.process_added,
            "ada",
            "new desk",
            1,
        )
        [start] = store.stage_history("billing", "retail")
        assert (start.from_stage, start.to_stage, start.reason) == (
            None,
            Stage.logging,
            "process added by ada: new desk",
        )
    assert added.sent == []  # no earlier stage to change from: nothing goes on stage.changes

    output = added.ok("process", "list")
    assert f"billing (schema version 1, hash {SCHEMA.schema_hash()}; revision 1): policy -" in output
    assert "retail: logging  vip: logging" in output


def test_adding_the_same_schema_again_changes_nothing(added: Place) -> None:
    output = added.ok("process", "add", str(added.root / "schema.yaml"))
    assert "registered with this schema already" in output
    assert added.registry.pointer("billing").revision == 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("process_id: [unclosed", "is not valid YAML"),
        ("- just a list", "expected a mapping"),
        ("process_id: ../escape\n", "process_id: String should match pattern"),
        (
            "process_id: billing\ncontrols:\n  - name: refund\n  - name: refund\n",
            "action 'refund' is defined twice",
        ),
        ("process_id: billing\nfields:\n  - name: plan\n    type: enum\n", "fields.0"),
    ],
)
def test_an_invalid_schema_is_refused_with_what_is_wrong(place: Place, text: str, expected: str) -> None:
    path = place.root / "bad.yaml"
    path.write_text(text)
    result = place.run("process", "add", str(path))
    assert result.exit_code == 1
    assert expected in result.output and "error:" in result.output
    assert place.registry.processes() == []


def test_a_missing_schema_file_is_refused(place: Place) -> None:
    result = place.run("process", "add", str(place.root / "nope.yaml"))
    assert result.exit_code == 1 and "cannot read" in result.output


def test_another_schema_is_refused_without_replace_then_voids_what_is_in_service(added: Place, tmp_path: Path) -> None:
    added.ok("models", "deploy", "--process", "billing", "--policy", str(ngram_artefact(tmp_path / "out")))
    added.sent.clear()
    wider = SCHEMA.model_copy(update={"version": 2, "fields": [*SCHEMA.fields, UIField(name="country")]})
    path = write_schema(tmp_path / "v2.yaml", wider)

    refused = added.run("process", "add", str(path))
    assert refused.exit_code == 1
    assert "registered with another schema" in refused.output and "--replace" in refused.output
    assert "Replacing it voids: policy policy-ngram-" in refused.output
    assert "retail copilot -> logging" in refused.output
    assert added.registry.schema("billing") == SCHEMA and added.registry.pointer("billing").policy is not None

    output = added.ok("process", "add", str(path), "--replace", "--by", "grace", "--reason", "country field")
    assert "replaced the schema of billing" in output and "voided: policy policy-ngram-" in output
    registry = added.registry
    assert registry.schema("billing") == wider
    pointer = registry.pointer("billing")
    assert pointer.policy is None and pointer.stage("retail") is Stage.logging
    assert [(c.business_cluster, c.from_stage, c.to_stage) for c in added.sent] == [
        ("retail", Stage.copilot, Stage.logging),
        ("vip", Stage.copilot, Stage.logging),
    ]
    with added.store() as store:
        assert store.service_changes("billing")[-1].kind is ServiceChangeKind.schema_replaced
        assert store.latest_stage("billing", "vip") is Stage.logging


# models deploy / list / rollback -------------------------------------------------------------


def test_deploy_installs_a_trained_policy_and_puts_it_in_service(added: Place, tmp_path: Path) -> None:
    artefact = ngram_artefact(tmp_path / "out")
    output = added.ok("models", "deploy", "-p", "billing", "--policy", str(artefact), "--by", "ada", "--reason", "v1")
    version = artefact.name
    assert f"deployed to billing (revision 2): policy {version}, critic policy-confidence" in output
    assert "retail: logging -> copilot" in output

    registry = added.registry
    assert (registry.process_dir("billing") / "policy" / version / "artefact.json").is_file()
    models = registry.load("billing")  # what a worker loads on its next reload
    assert models.policy.version == version and models.pointer.stage("vip") is Stage.copilot
    assert [(c.business_cluster, c.to_stage) for c in added.sent] == [("retail", Stage.copilot), ("vip", Stage.copilot)]
    with added.store() as store:
        promoted = store.promoted_version(ModelKind.policy, "billing")
        assert promoted is not None and promoted.version == version
        change = store.service_changes("billing")[-1]
        assert (change.kind, change.policy, change.changed_by, change.reason) == (
            ServiceChangeKind.deployed,
            version,
            "ada",
            "v1",
        )
        assert store.latest_stage("billing", "retail") is Stage.copilot

    again = added.ok("models", "deploy", "-p", "billing", "--policy", str(artefact))
    assert "in service already (revision 2)" in again

    listing = added.ok("models", "list", "--process", "billing")
    assert f" * {version}  policy-ngram" in listing and "12 training cases; deployed" in listing and "by ada" in listing
    assert "critics: none" in listing
    assert "r1: policy -, critic policy-confidence; process_added by ada" in listing
    assert f"r2: policy {version}, critic policy-confidence; deployed by ada" in listing


def test_an_artefact_built_for_another_schema_is_refused(added: Place, tmp_path: Path) -> None:
    other = SCHEMA.model_copy(update={"fields": [*SCHEMA.fields, UIField(name="country")]})
    artefact = ngram_artefact(tmp_path / "out", schema=other)
    result = added.run("models", "deploy", "--process", "billing", "--policy", str(artefact))
    assert result.exit_code == 1
    assert f"was built for process schema {other.schema_hash()}" in result.output
    assert f"registered with schema {SCHEMA.schema_hash()}" in result.output
    registry = added.registry
    assert not (registry.process_dir("billing") / "policy").exists()  # nothing copied
    assert registry.pointer("billing").revision == 1


def test_what_is_not_a_loadable_artefact_of_this_process_is_refused(added: Place, tmp_path: Path) -> None:
    broken = ngram_artefact(tmp_path / "out")
    (broken / "ngram.json").unlink()
    checks = [
        (["--policy", str(tmp_path)], "is not a model artefact"),
        (["--policy", str(broken)], "does not load as a policy-ngram"),
        (["--critic", str(broken)], "holds a policy-ngram, not a critic"),
        (["--critic", str(critic_artefact(tmp_path / "critics"))], "deploy a policy first"),
    ]
    assert [p.name for p in broken.iterdir()] == ["artefact.json"]
    for args, expected in checks:
        result = added.run("models", "deploy", "--process", "billing", *args)
        assert result.exit_code == 1, args
        assert expected in result.output, result.output
    foreign = ngram_artefact(tmp_path / "foreign", schema=SCHEMA.model_copy(update={"process_id": "returns"}))
    result = added.run("models", "deploy", "--process", "billing", "--policy", str(foreign))
    assert result.exit_code == 1 and "of process 'returns', not 'billing'" in result.output
    result = added.run("models", "deploy", "--process", "nobody", "--policy", str(broken))
    assert result.exit_code == 1 and "add it first: selauto process add" in result.output
    assert added.registry.pointer("billing").revision == 1


def test_a_new_critic_voids_the_certificate_and_ends_selective(added: Place, tmp_path: Path) -> None:
    policy = ngram_artefact(tmp_path / "out")
    added.ok("models", "deploy", "--process", "billing", "--policy", str(policy))
    registry = added.registry
    # As the learning loop leaves it once it certified retail with the policy's confidence.
    certified = registry.pointer("billing").model_copy(
        update={
            "thresholds": Thresholds(values={"billing/retail/auto/lookup_order": 0.7}, version="t1"),
            "stages": {"retail": Stage.selective, "vip": Stage.copilot},
            "certificates": {"retail": CERTIFICATE.model_copy(update={"policy_version": policy.name})},
        }
    )
    registry.publish("billing", certified)
    added.sent.clear()

    critic = critic_artefact(tmp_path / "critics")
    output = added.ok("models", "deploy", "--process", "billing", "--critic", str(critic), "--by", "grace")
    assert f"policy {policy.name}, critic {critic.name}" in output
    assert "voided: certificate of retail" in output and "voided: 1 threshold(s) of version t1" in output
    pointer = registry.pointer("billing")
    assert pointer.certificates == {} and pointer.thresholds.values == {}
    assert pointer.stage("retail") is Stage.copilot
    [change] = added.sent
    assert (change.business_cluster, change.from_stage, change.to_stage) == ("retail", Stage.selective, Stage.copilot)
    assert f"critic {critic.name} deployed by grace" in change.reason
    assert registry.load("billing").critic.version == critic.name
    with added.store() as store:
        assert store.service_changes("billing")[-1].critic == critic.name
        assert "certificate of retail" in store.service_changes("billing")[-1].detail
        assert store.stage_history("billing", "retail")[-1].to_stage is Stage.copilot

    # The policy went in with the first deploy, by the OS user; the critic deploy did not move it.
    listing = added.ok("models", "list", "--process", "billing")
    [policy_line] = [line for line in listing.splitlines() if policy.name in line and "training cases" in line]
    assert " * " in policy_line and "by grace" not in policy_line
    [critic_line] = [line for line in listing.splitlines() if critic.name in line and "training cases" in line]
    assert critic_line.startswith(" * ") and "deployed" in critic_line and critic_line.endswith("by grace")


def test_a_deploy_keeps_pauses_and_hand_set_stages_and_says_what_it_held(added: Place, tmp_path: Path) -> None:
    added.ok("pause", "-p", "billing", "--cluster", "retail", "--reason", "incident 42", "--by", "alice")
    added.ok(
        "stage", "set", "copilot", "-p", "billing", "--cluster", "vip", "--reason", "x", "--by", "bob", "--no-publish"
    )
    artefact = ngram_artefact(tmp_path / "out")
    output = added.ok("models", "deploy", "-p", "billing", "--policy", str(artefact), "--by", "ada")
    assert "retail: would move logging -> copilot; held: the cluster is paused by alice (incident 42)" in output
    pointer = added.registry.pointer("billing")
    assert pointer.policy == f"policy/{artefact.name}" and set(pointer.paused) == {"retail"}
    assert pointer.stage("retail") is Stage.logging and pointer.manual["vip"].by == "bob"
    assert added.sent == []  # vip was set to copilot by hand already; retail is held
    with added.store() as store:
        assert "held: the cluster is paused by alice" in store.service_changes("billing")[-1].detail


def test_a_version_the_learning_loop_promoted_is_listed_as_its(added: Place, tmp_path: Path) -> None:
    added.ok("models", "deploy", "--process", "billing", "--policy", str(ngram_artefact(tmp_path / "out")))
    registry = added.registry
    # What apply_plan does with a policy update: the artefact, the pointer, the store's record.
    learned = ngram_artefact(registry.process_dir("billing") / "policy", n=5, version="policy-ngram-learned")
    registry.publish("billing", registry.pointer("billing").model_copy(update={"policy": f"policy/{learned.name}"}))
    with added.store() as store:
        store.record_model_version(ModelKind.policy, "billing", learned.name, f"policy/{learned.name}", promoted=True)
    listing = added.ok("models", "list", "--process", "billing")
    [line] = [line for line in listing.splitlines() if line.startswith(" * ")]
    assert learned.name in line and "learning loop" in line and line.endswith("by learning loop")
    assert f"r3: policy {learned.name}, critic policy-confidence; the learning loop" in listing


def test_rollback_goes_back_to_the_models_before_and_twice_undoes_itself(added: Place, tmp_path: Path) -> None:
    first = ngram_artefact(tmp_path / "out", version="policy-ngram-first")
    second = ngram_artefact(tmp_path / "out", n=6, version="policy-ngram-second")
    refused = added.run("models", "rollback", "--process", "billing")
    assert refused.exit_code == 1 and "nothing to roll back to" in refused.output
    added.ok("models", "deploy", "--process", "billing", "--policy", str(first))
    refused = added.run("models", "rollback", "--process", "billing")
    assert refused.exit_code == 1 and "nothing to roll back to" in refused.output  # not back to no policy
    added.ok("models", "deploy", "--process", "billing", "--policy", str(second))
    registry = added.registry
    # A learning run in between (a stage it moved) changes no model: rollback looks past it.
    registry.publish("billing", registry.pointer("billing").model_copy(update={"exploration_share": 0.1}))

    output = added.ok("models", "rollback", "--process", "billing", "--by", "ada", "--reason", "second is worse")
    assert "rolled back billing (revision 5): policy policy-ngram-first" in output
    assert registry.load("billing").policy.version == "policy-ngram-first"
    output = added.ok("models", "rollback", "--process", "billing")
    assert "policy policy-ngram-second" in output

    output = added.ok("models", "rollback", "--process", "billing", "--to", "policy-ngram-first")
    assert "(revision 7): policy policy-ngram-first" in output
    assert registry.pointer("billing").exploration_share == 0.1  # what the rollback does not concern stays
    refused = added.run("models", "rollback", "--process", "billing", "--to", "policy-ngram-first")
    assert refused.exit_code == 1 and "in service already" in refused.output
    refused = added.run("models", "rollback", "--process", "billing", "--to", "policy-ngram-none")
    assert refused.exit_code == 1 and "no policy or critic 'policy-ngram-none'" in refused.output
    (tmp_path / "outside").mkdir()
    refused = added.run("models", "rollback", "--process", "billing", "--to", "../../../outside")
    assert refused.exit_code == 1 and "is not a model version" in refused.output

    with added.store() as store:
        changes = store.service_changes("billing")
        assert [c.kind for c in changes][-3:] == [ServiceChangeKind.rolled_back] * 3
        assert (changes[-3].changed_by, changes[-3].reason, changes[-3].policy) == (
            "ada",
            "second is worse",
            "policy-ngram-first",
        )
        promoted = store.promoted_version(ModelKind.policy, "billing")
        assert promoted is not None and promoted.version == "policy-ngram-first"
    history = [json.loads(p.read_text())["revision"] for p in (registry.process_dir("billing") / "history").iterdir()]
    assert sorted(history) == list(range(1, 8))
    listing = added.ok("models", "list", "--process", "billing")
    assert " * policy-ngram-first" in listing and "   policy-ngram-second" in listing
    assert "r4" not in listing  # the learning run's revision changed no model
    assert "r5: policy policy-ngram-first, critic policy-confidence; rolled_back by ada" in listing


def test_rollback_refuses_models_built_for_a_replaced_schema(added: Place, tmp_path: Path) -> None:
    added.ok("models", "deploy", "--process", "billing", "--policy", str(ngram_artefact(tmp_path / "a", version="p-a")))
    wider = SCHEMA.model_copy(update={"version": 2, "fields": [*SCHEMA.fields, UIField(name="country")]})
    added.ok("process", "add", str(write_schema(tmp_path / "v2.yaml", wider)), "--replace")
    added.ok("models", "deploy", "--process", "billing", "--policy", str(ngram_artefact(tmp_path / "b", wider, 5)))
    result = added.run("models", "rollback", "--process", "billing", "--to", "p-a")
    assert result.exit_code == 1
    assert "cannot roll back to policy p-a" in result.output and "was built for process schema" in result.output


def test_a_pointer_published_before_the_history_existed_still_rolls_back_by_version(
    place: Place, tmp_path: Path
) -> None:
    registry = place.registry
    registry.save_schema(SCHEMA)
    first = ngram_artefact(registry.process_dir("billing") / "policy", version="policy-ngram-old")
    second = ngram_artefact(registry.process_dir("billing") / "policy", version="policy-ngram-new")
    registry.publish("billing", ServicePointer(policy=f"policy/{second.name}", default_stage=Stage.copilot))
    for entry in (registry.process_dir("billing") / "history").iterdir():
        entry.unlink()  # as a registry written by an older release
    output = place.ok("models", "rollback", "--process", "billing", "--to", first.name)
    assert "rolled back billing (revision 2): policy policy-ngram-old, critic policy-confidence" in output
    assert registry.pointer("billing").policy == "policy/policy-ngram-old"


def test_every_new_option_has_help() -> None:
    group = typer.main.get_command(app)
    for name in ("process", "models"):
        sub = group.commands[name]  # type: ignore[attr-defined]
        for command in sub.commands.values():
            assert command.help, command.name
            for param in command.params:
                assert getattr(param, "help", None), f"{command.name} {param.name}"
