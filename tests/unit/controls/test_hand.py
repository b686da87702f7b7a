"""The pure hand controls, and the registry's locked read-modify-write they are written with."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from selective_autonomy.controls import hand
from selective_autonomy.controls.errors import HeldByHand, NothingPending, NothingToChange
from selective_autonomy.controls.hand import HandChange
from selective_autonomy.inference.registry import ModelRegistry, ServicePointer
from selective_autonomy.schemas.event_parts import Stage
from tests.factories import T0
from tests.support.promotions import with_proposal

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


def test_a_promotion_is_confirmed_only_while_pending_and_no_hand_control_holds_it() -> None:
    proposed = with_proposal(ServicePointer(default_stage=Stage.copilot), "billing", "retail")
    promoted, pending = hand.confirm(proposed, "billing", "retail")
    assert promoted.stage("retail") is Stage.selective and promoted.selective_since == {"retail": pending.watch_from}
    with pytest.raises(NothingPending, match="in selective, not copilot"):
        hand.confirm(promoted, "billing", "retail")
    with pytest.raises(NothingPending, match="none was proposed"):
        hand.confirm(proposed, "billing", "vip")
    # A stage set by hand is a person's: set it or release it, a confirmation does not move it.
    held = proposed.model_copy(update={"manual": hand.set_stage(proposed, "retail", Stage.copilot, CHANGE, T0).manual})
    with pytest.raises(HeldByHand, match="held in copilot by hand by alice"):
        hand.confirm(held, "billing", "retail")
    for scope, text in (("retail", "cluster 'retail' is paused"), ("*", "the whole process is paused")):
        with pytest.raises(HeldByHand, match=text):
            hand.confirm(hand.pause(proposed, scope, CHANGE, T0), "billing", "retail")
    # Setting the stage by hand drops the proposal.
    assert hand.set_stage(proposed, "retail", Stage.copilot, CHANGE, T0).pending_promotions == {}
