"""Chronological split: ordered by first event (ties by case id), complete, never random."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from selective_autonomy.traces.errors import TraceError
from selective_autonomy.traces.format import Case
from selective_autonomy.traces.split import chronological_order, chronological_split

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def case(case_id: str, minutes: int) -> Case:
    return Case(case_id=case_id, process_id="p", business_cluster="b", started_at=T0 + timedelta(minutes=minutes))


def test_split_orders_by_start_then_case_id() -> None:
    cases = [case(f"c{i}", minutes) for i, minutes in enumerate([9, 3, 7, 3, 1, 5, 8, 2, 6, 4])]
    train, val, test = chronological_split(reversed(cases))
    print(f"split sizes: {len(train)}/{len(val)}/{len(test)}")
    assert [len(train), len(val), len(test)] == [6, 2, 2]
    assert [c.case_id for c in train] == ["c4", "c7", "c1", "c3", "c9", "c5"]  # c1 and c3 tie at 3 min
    assert max(c.started_at for c in train) <= min(c.started_at for c in val)
    assert max(c.started_at for c in val) <= min(c.started_at for c in test)
    assert chronological_split(cases) == chronological_split(list(reversed(cases)))


@given(
    starts=st.lists(st.integers(min_value=0, max_value=50), max_size=40),
    fractions=st.lists(st.integers(min_value=1, max_value=9), min_size=1, max_size=4),
)
def test_split_covers_every_case_once_in_order(starts: list[int], fractions: list[int]) -> None:
    cases = [case(f"c{i:02d}", minutes) for i, minutes in enumerate(starts)]
    shares = [f / sum(fractions) for f in fractions]
    parts = chronological_split(cases, shares)
    assert len(parts) == len(shares)
    flat = [c for part in parts for c in part]
    assert flat == chronological_order(cases)
    for part, share in zip(parts, shares, strict=True):
        assert abs(len(part) - share * len(cases)) <= 1 + 1e-9  # two roundings of at most 0.5 each


@pytest.mark.parametrize("bad", [(), (0.5, 0.6), (1.0, 0.0), (-0.2, 1.2)])
def test_bad_fractions(bad: tuple[float, ...]) -> None:
    with pytest.raises(TraceError, match="fractions"):
        chronological_split([case("a", 0)], bad)
