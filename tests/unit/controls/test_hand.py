"""The pure hand controls, and the registry's locked read-modify-write they are written with."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from selective_autonomy.controls import hand
from selective_autonomy.controls.errors import NothingToChange
from selective_autonomy.controls.hand import HandChange
from selective_autonomy.inference.registry import ModelRegistry, ServicePointer
from selective_autonomy.schemas.events import Stage
from tests.unit.agents.fixtures import T0

CHANGE = HandChange(process_id="billing", reason="incident", by="alice")


def test_setting_selective_by_hand_starts_the_monitor_clock_and_leaving_it_stops_it() -> None:
    pointer = ServicePointer(default_stage=Stage.copilot)
    promoted = hand.set_stage(pointer, "retail", Stage.selective, CHANGE, T0)
    assert promoted.stage("retail") is Stage.selective and promoted.selective_since == {"retail": T0}
    assert promoted.manual["retail"].stage is Stage.selective
    demoted = hand.set_stage(promoted, "retail", Stage.copilot, CHANGE, T0)
    assert demoted.selective_since == {} and demoted.manual["retail"].stage is Stage.copilot
    assert hand.release(demoted, "retail").manual == {}
    with pytest.raises(NothingToChange):
        hand.release(pointer, "retail")


def test_concurrent_pauses_are_all_kept(tmp_path: Path) -> None:
    """The registry's lock: no writer loses another's change (each read-modify-write is whole)."""
    registry = ModelRegistry(tmp_path)
    registry.publish("billing", ServicePointer())
    scopes = [f"cluster{i}" for i in range(12)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(lambda s: registry.update("billing", lambda p: hand.pause(p, s, CHANGE, T0)), scopes))
    pointer = registry.pointer("billing")
    assert set(pointer.paused) == set(scopes) and pointer.revision == 1 + len(scopes)
