"""Topic creation reports a partition mismatch in the log (never on stdout) and changes nothing."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import pytest

from selective_autonomy.config import Settings
from selective_autonomy.streams import topics
from selective_autonomy.streams.topics import TopicSpec, ensure_topics


class _Admin:
    def __init__(self, config: dict[str, Any]) -> None:
        self.created: list[Any] = []

    def list_topics(self, timeout: float) -> SimpleNamespace:
        return SimpleNamespace(topics={"ui.state": SimpleNamespace(partitions={0: None, 1: None})})

    def create_topics(self, new: list[Any], operation_timeout: float) -> dict[str, Any]:
        raise AssertionError("nothing is missing: nothing may be created")


def test_a_partition_mismatch_is_logged_not_printed(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(topics, "AdminClient", _Admin)
    with caplog.at_level(logging.WARNING, logger="selective_autonomy.streams.topics"):
        assert ensure_topics(Settings(), [TopicSpec("ui.state", 4)]) == []
    assert "topic ui.state exists with 2 partitions (configured 4)" in caplog.text
    assert capsys.readouterr().out == ""
