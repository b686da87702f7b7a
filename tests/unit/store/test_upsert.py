"""The one dialect switch of the store's idempotent inserts."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, select

from selective_autonomy.store.errors import UnsupportedDatabase
from selective_autonomy.store.upsert import insert_many, insert_new, upsert

METADATA = MetaData()
ITEMS = Table("items", METADATA, Column("id", Integer, primary_key=True), Column("name", String, unique=True))


def test_insert_new_inserts_once_by_key_or_by_named_columns(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    METADATA.create_all(engine)
    with engine.begin() as connection:
        assert insert_new(connection, ITEMS, {"id": 1, "name": "a"})
        assert not insert_new(connection, ITEMS, {"id": 1, "name": "b"})
        assert not insert_new(connection, ITEMS, {"id": 2, "name": "a"}, conflict=("name",))
        insert_many(connection, ITEMS, [{"id": 1, "name": "c"}, {"id": 3, "name": "d"}])
        rows = connection.execute(select(ITEMS).order_by(ITEMS.c.id)).all()
    assert [tuple(row) for row in rows] == [(1, "a"), (3, "d")]


def test_another_dialect_is_refused() -> None:
    connection: Any = SimpleNamespace(dialect=SimpleNamespace(name="mysql"))
    with pytest.raises(UnsupportedDatabase, match="mysql"):
        upsert(connection, ITEMS)
