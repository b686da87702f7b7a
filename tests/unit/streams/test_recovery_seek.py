"""A table-recovery seek with an offset a concurrent rebalance reset restarts recovery instead of
killing the worker (faust re-adds partitions with offset None while a recovery pass still runs)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from faust.tables.recovery import RebalanceAgain
from faust.types import TP

from selective_autonomy.config import BrokerProfile, KafkaSettings, Settings
from selective_autonomy.streams.app import build_app, require_seekable
from selective_autonomy.streams.delivered_acks import DeliveredOnlyAcks

UI_STATE_1 = TP("ui.state", 1)
CHANGELOG_0 = TP("worker-sessions-changelog", 0)


@pytest.mark.parametrize("offset", [None, -1])
def test_an_offset_that_cannot_be_sought_restarts_recovery(offset: Any) -> None:
    with pytest.raises(RebalanceAgain):
        require_seekable({CHANGELOG_0: 0, UI_STATE_1: offset})


def test_offsets_from_zero_up_are_sought() -> None:
    require_seekable({CHANGELOG_0: 0, UI_STATE_1: 41})


def test_the_apps_consumer_checks_before_it_seeks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(kafka=KafkaSettings(profile=BrokerProfile.tansu), data_dir=tmp_path)
    consumer_class = build_app(settings, app_id="seek").transport.Consumer
    sought: list[dict[TP, Any]] = []

    async def thread_seek_wait(self: Any, partitions: dict[TP, Any]) -> None:
        sought.append(dict(partitions))

    # Stand in for the thread-backed seek under the override: no thread, no broker.
    monkeypatch.setattr(DeliveredOnlyAcks, "seek_wait", thread_seek_wait)
    consumer = consumer_class.__new__(consumer_class)
    asyncio.run(consumer.seek_wait({UI_STATE_1: 7}))
    with pytest.raises(RebalanceAgain):
        asyncio.run(consumer.seek_wait({UI_STATE_1: None}))
    assert sought == [{UI_STATE_1: 7}]
