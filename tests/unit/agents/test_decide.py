"""The decide agent's start-up heap freeze."""

from __future__ import annotations

import gc

from selective_autonomy.agents.decide import freeze_startup_heap


def test_freezing_the_start_up_heap_exempts_it_from_collections() -> None:
    before = gc.get_freeze_count()
    try:
        freeze_startup_heap()
        assert gc.get_freeze_count() > before
    finally:
        gc.unfreeze()  # the test process goes on collecting as before
