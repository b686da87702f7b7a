"""The session table's updates can be awaited: the decide agent acks an event only after them."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import faust
import pytest

from selective_autonomy.config import Settings
from selective_autonomy.streams.app import build_app
from selective_autonomy.streams.tables import AcknowledgedTable, add_acknowledged_table


def table_with_fake_changelog(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[AcknowledgedTable, list[Any]]:
    app = build_app(Settings(data_dir=tmp_path), app_id="table-test")
    table = add_acknowledged_table(app, "sessions", default=dict, key_type=bytes, partitions=2, use_partitioner=True)
    sent: list[asyncio.Future[str]] = []

    def send_changelog(self: faust.Table[bytes, Any], *args: Any, **kwargs: Any) -> asyncio.Future[str]:
        sent.append(asyncio.get_running_loop().create_future())  # resolved when "the broker" acks
        return sent[-1]

    monkeypatch.setattr(faust.Table, "send_changelog", send_changelog)
    return table, sent


def test_written_waits_for_every_changelog_record_sent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    table, sent = table_with_fake_changelog(tmp_path, monkeypatch)

    async def scenario() -> None:
        first = table.send_changelog(None, b"s1", {"v": 1})
        table.send_changelog(None, b"s2", {"v": 1})
        assert isinstance(table, faust.Table) and table.unacknowledged == 2
        waiting = asyncio.ensure_future(table.written())
        sent[0].set_result("acked")
        await asyncio.sleep(0.01)
        assert not waiting.done()  # one update still unacknowledged
        sent[1].set_result("acked")
        await asyncio.wait_for(waiting, 1.0)
        assert table.unacknowledged == 0 and first.done()
        await asyncio.wait_for(table.written(), 1.0)  # nothing pending: returns at once

    asyncio.run(scenario())


def test_a_failed_update_fails_the_wait(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    table, sent = table_with_fake_changelog(tmp_path, monkeypatch)

    async def scenario() -> None:
        table.send_changelog(None, b"s1", {"v": 1})
        sent[0].set_exception(RuntimeError("broker refused the record"))
        with pytest.raises(RuntimeError, match="refused"):
            await table.written()

    asyncio.run(scenario())


def test_the_decide_agent_registers_its_session_table_as_acknowledged(tmp_path: Path) -> None:
    from selective_autonomy.agents.worker import build_worker

    worker = build_worker(Settings(data_dir=tmp_path, models_dir=tmp_path / "models"))
    assert isinstance(worker.decide.table, AcknowledgedTable)
