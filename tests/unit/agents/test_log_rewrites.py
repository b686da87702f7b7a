"""A redelivery reads the same bytes at the same offset; a rewritten log reads others."""

from __future__ import annotations

from selective_autonomy.agents.log_rewrites import LogFingerprints


def test_a_redelivered_record_is_not_a_rewrite() -> None:
    prints = LogFingerprints(window=8)
    assert not prints.changed("ui.state", 0, 5, b"state-5")
    assert not prints.changed("ui.state", 0, 5, b"state-5")


def test_other_bytes_at_a_read_offset_are_a_rewrite() -> None:
    prints = LogFingerprints(window=8)
    prints.changed("ui.state", 0, 5, b"state-5")
    assert prints.changed("ui.state", 0, 5, b"another record")


def test_partitions_and_topics_are_told_apart() -> None:
    prints = LogFingerprints(window=8)
    prints.changed("ui.state", 0, 5, b"state-5")
    assert not prints.changed("ui.state", 1, 5, b"other partition")
    assert not prints.changed("copilot.feedback", 0, 5, b"other topic")


def test_an_offset_pushed_out_of_the_window_is_forgotten() -> None:
    prints = LogFingerprints(window=8)
    prints.changed("ui.state", 0, 5, b"state-5")
    prints.changed("ui.state", 0, 13, b"state-13")  # same slot (13 % 8 == 5): offset 5 is forgotten
    assert not prints.changed("ui.state", 0, 5, b"another record")
