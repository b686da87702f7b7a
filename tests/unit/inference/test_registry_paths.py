"""The models registry maps process ids to directories only through the identifier rule."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from selective_autonomy.console.catalog import SchemaCatalog
from selective_autonomy.inference.registry import (
    LOCK_FILE,
    WHOLE_PROCESS,
    ModelRegistry,
    Pause,
    PointerChanged,
    ServicePointer,
)
from selective_autonomy.schemas.identifiers import InvalidIdentifier
from selective_autonomy.schemas.process import ProcessSchema

HOSTILE = ["../outside", "a/b", "..", ".", "a\x00b", "", "x" * 129]


@pytest.mark.parametrize("process_id", HOSTILE)
def test_a_hostile_process_id_never_becomes_a_path(tmp_path: Path, process_id: str) -> None:
    registry = ModelRegistry(tmp_path / "models")
    for use in (
        registry.process_dir,
        registry.schema,
        registry.pointer,
        registry.revision,
        registry.load,
        lambda p: registry.publish(p, ServicePointer()),
    ):
        with pytest.raises(InvalidIdentifier):
            use(process_id)
    assert not (tmp_path / "outside").exists() and list(tmp_path.iterdir()) == []
    assert SchemaCatalog(tmp_path / "models").schema(process_id) is None


def test_valid_ids_keep_their_directory_names(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    registry.save_schema(ProcessSchema(process_id="sgd.Banks_1"))
    assert (tmp_path / "sgd.Banks_1" / "schema.yaml").is_file()
    (tmp_path / ".hidden").mkdir()
    ProcessSchema(process_id="billing").save(tmp_path / ".hidden" / "schema.yaml")
    assert registry.processes() == ["sgd.Banks_1"]


def test_every_published_pointer_is_kept_in_the_history(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    registry.save_schema(ProcessSchema(process_id="billing"))
    assert registry.history("billing") == []
    first = registry.publish("billing", ServicePointer(policy="policy/p1"))
    second = registry.publish("billing", ServicePointer(policy="policy/p2"))
    assert registry.history("billing") == [first, second]
    assert sorted(p.name for p in (tmp_path / "billing" / "history").iterdir()) == ["1.json", "2.json"]
    assert registry.pointer("billing") == second
    assert registry.processes() == ["billing"]


def test_a_pointer_computed_from_an_older_revision_is_refused(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    read = registry.publish("billing", ServicePointer(policy="policy/p1"))
    registry.publish("billing", ServicePointer(policy="policy/p2"))  # e.g. a deploy meanwhile
    with pytest.raises(PointerChanged, match="revision 2"):
        registry.publish("billing", read.model_copy(update={"critic": "critic/c1"}), expected_revision=read.revision)
    assert registry.pointer("billing").policy == "policy/p2"
    assert registry.publish("billing", ServicePointer(), expected_revision=2).revision == 3


def test_hand_controls_go_through_the_same_lock_and_history_and_no_publish_lifts_them(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    read = registry.publish("billing", ServicePointer(policy="policy/p1"))
    pause = Pause(reason="incident", by="alice", at=datetime(2026, 1, 5, tzinfo=UTC))
    _, paused = registry.update("billing", lambda p: p.model_copy(update={"paused": {WHOLE_PROCESS: pause}}))
    assert registry.history("billing") == [read, paused]
    # A change computed before the pause is refused; one computed after it cannot lift it.
    with pytest.raises(PointerChanged):
        registry.publish("billing", read.model_copy(update={"policy": "policy/p2"}), expected_revision=read.revision)
    after = registry.publish("billing", ServicePointer(policy="policy/p2"), expected_revision=paused.revision)
    assert after.paused == {WHOLE_PROCESS: pause} and after.policy == "policy/p2"
    assert sorted(p.name for p in tmp_path.joinpath("billing").iterdir() if p.name.startswith(".")) == [LOCK_FILE]
