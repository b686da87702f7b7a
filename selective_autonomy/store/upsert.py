"""Inserts: the idempotent ones (the one place that knows which SQL dialects the store speaks) and
the append of a row whose id the database assigns.

PostgreSQL and SQLite both have ``INSERT ... ON CONFLICT``; SQLAlchemy builds it from each
dialect's own ``insert``, so the switch on the dialect is made here once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite

from selective_autonomy.store.errors import StoreError, UnsupportedDatabase

CHUNK = 500  # rows per multi-row INSERT and ids per IN list: well under SQLite's 32,766 bound parameters

_INSERTS = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


def upsert(connection: Connection, table: Table) -> Any:
    """The dialect's ``INSERT`` of ``table``, which takes ``on_conflict_do_nothing/do_update``."""
    dialect = connection.dialect.name
    if dialect not in _INSERTS:
        raise UnsupportedDatabase(f"unsupported database {dialect!r}")
    return _INSERTS[dialect](table)


def _primary_key(table: Table) -> list[str]:
    return [column.name for column in table.primary_key.columns]


def insert_new(
    connection: Connection, table: Table, row: Mapping[str, Any], conflict: Sequence[str] | None = None
) -> bool:
    """INSERT ... ON CONFLICT DO NOTHING: True if the row was inserted, False if its key was there.

    Atomic across processes: the database decides which of two racing inserts wins.

    :param conflict: the unique columns (default the primary key).
    """
    keys = list(conflict) if conflict is not None else _primary_key(table)
    statement = upsert(connection, table).values(row).on_conflict_do_nothing(index_elements=keys)
    inserted = connection.execute(statement, execution_options={"preserve_rowcount": True}).rowcount
    return bool(inserted == 1)


def insert_many(connection: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Many rows in one executemany; rows whose primary key is there already are left alone."""
    connection.execute(upsert(connection, table).on_conflict_do_nothing(index_elements=_primary_key(table)), rows)


def insert_returning_id(connection: Connection, table: Table, row: Mapping[str, Any]) -> int:
    """INSERT one row into a table with an autoincrement ``id``; the id the database gave it."""
    key = connection.execute(table.insert().values(row)).inserted_primary_key
    if not key:  # every dialect the store supports returns the key of a single-row insert
        raise StoreError(f"the database returned no id for the row inserted into {table.name}")
    return int(key[0])
