"""The streaming benchmark's per-second latency: what shows a phase's latency drifting."""

from __future__ import annotations

from bench.streaming.metering import latency_by_second


def test_latency_by_second_groups_records_by_arrival_second() -> None:
    arrived = [100.0, 100.2, 100.9, 101.1, 103.5]
    latency = [0.010, 0.020, 0.030, 0.100, 0.005]
    rows = latency_by_second(arrived, latency)
    assert [row[:2] for row in rows] == [[0, 3], [1, 1], [3, 1]]  # no row for a second without records
    assert rows[0][2] == 20.0 and 29.0 < rows[0][3] <= 30.0
    assert rows[1][2:] == [100.0, 100.0]
    assert latency_by_second([], []) == []
