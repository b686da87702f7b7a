"""SQLite specifics: the default URL, WAL mode and busy timeout shared by several processes."""

from __future__ import annotations

from pathlib import Path

import pytest

from selective_autonomy.store import FeedbackStore, default_url
from selective_autonomy.store.engine import SQLITE_BUSY_TIMEOUT_S, create_store_engine
from selective_autonomy.store.errors import UnsupportedDatabase


def test_default_url_is_an_absolute_file_under_the_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert default_url(Path("runs")) == f"sqlite:///{tmp_path / 'runs' / 'feedback.db'}"


def test_sqlite_store_uses_wal_and_a_busy_timeout(tmp_path: Path) -> None:
    url = default_url(tmp_path / "nested" / "data")
    with FeedbackStore.open(url) as store, store.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == int(SQLITE_BUSY_TIMEOUT_S * 1000)
    assert (tmp_path / "nested" / "data" / "feedback.db").is_file()


def test_unsupported_database_is_refused() -> None:
    with pytest.raises(UnsupportedDatabase, match="mysql"):
        create_store_engine("mysql://localhost/feedback")
