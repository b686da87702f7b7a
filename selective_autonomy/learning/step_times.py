"""Where a learning run's time goes: seconds, calls and rows read of each named step.

The learning loop times its steps (the store reads, the policy update, the critic choice,
certification, publishing) into one :class:`StepTimes`, which a caller reads afterwards: the
learning-cost benchmark reports it per run, so it measures the loop users run, not a patched one.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass
class StepTime:
    """The sums over every time a step ran."""

    s: float = 0.0
    calls: int = 0
    rows: int = 0
    """Records the step read, where it reads any (set by the step)."""


class StepTimes:
    """Sums per step name, over every run of the loop that holds it."""

    def __init__(self) -> None:
        self.steps: dict[str, StepTime] = {}

    @contextmanager
    def step(self, name: str) -> Iterator[StepTime]:
        """Time the block as one call of ``name``; the block may add to the yielded ``rows``."""
        entry = self.steps.setdefault(name, StepTime())
        begun = time.perf_counter()
        try:
            yield entry
        finally:
            entry.s += time.perf_counter() - begun
            entry.calls += 1
