"""Chronological train/validation/test splits of cases.

A deployed policy is trained on past sessions and judged on future ones; a random split would let
it learn from cases that happen after those it is evaluated on (seasonality, new operators, drift)
and overstate its accuracy. Cases are therefore ordered by their first event, never shuffled.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from selective_autonomy.traces.errors import TraceError
from selective_autonomy.traces.format import Case


def chronological_order(cases: Iterable[Case]) -> list[Case]:
    """Cases sorted by start time, ties broken by case id (so the order never depends on input order)."""
    return sorted(cases, key=lambda case: (case.started_at, case.case_id))


def chronological_split(cases: Iterable[Case], fractions: Sequence[float] = (0.6, 0.2, 0.2)) -> tuple[list[Case], ...]:
    """Split cases into consecutive periods holding the given fractions of cases, earliest first.

    Part ``k`` ends at case ``round(n * (f_0 + ... + f_k))``, so the parts always cover every case
    exactly once, and every case of a part starts no later than any case of the next part.

    :param fractions: positive shares summing to 1 (default ``(0.6, 0.2, 0.2)``: train, validation, test).
    :raises TraceError: if the fractions are not positive or do not sum to 1.
    """
    if not fractions or any(f <= 0 for f in fractions) or not math.isclose(sum(fractions), 1.0, abs_tol=1e-9):
        raise TraceError(f"fractions must be positive and sum to 1, got {tuple(fractions)}")
    ordered = chronological_order(cases)
    total = len(ordered)
    parts: list[list[Case]] = []
    start = 0
    cumulative = 0.0
    for index, fraction in enumerate(fractions):
        cumulative += fraction
        stop = total if index == len(fractions) - 1 else min(total, round(total * cumulative))
        parts.append(ordered[start:stop])
        start = stop
    return tuple(parts)
