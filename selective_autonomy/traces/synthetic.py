"""A deterministic clock for datasets whose turns carry no timestamps (SGD, ABCD).

Traces need times (state events carry them, splits order by them), but dialogue corpora only give
the order of turns. Inventing a fixed clock keeps imports reproducible: the same file always yields
the same cases, byte for byte.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

SYNTHETIC_EPOCH = datetime(2019, 3, 1, tzinfo=UTC)
"""Start of the synthetic clock (SGD's dialogues mostly talk about dates in March 2019)."""

TURN_SECONDS = 30
"""Synthetic time between two consecutive turns of a dialogue."""


def turn_time(start: datetime, turn: int, sub_step: int = 0) -> datetime:
    """Time of a turn: ``start + 30 s * turn``, plus one second per earlier action in the same turn.

    The per-action second keeps several actions of one turn in order; it is capped below the next
    turn's time so that time never runs backwards.
    """
    return start + timedelta(seconds=TURN_SECONDS * turn + min(sub_step, TURN_SECONDS - 1))
