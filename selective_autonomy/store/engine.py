"""Engines for the store's two backends: a SQLite file shared by several processes, or PostgreSQL.

SQLite runs in WAL mode with a busy timeout, so a worker, the console and the BPM executor can
read while one of them writes, and a writer waits its turn instead of failing. SQLAlchemy, not the
``sqlite3`` driver, emits BEGIN, so that every transaction (DDL included) is a real one; write
transactions begin IMMEDIATE, taking the write lock up front, so they never fail half-way to
upgrade a read lock.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url

from selective_autonomy.config import StoreSettings
from selective_autonomy.store.errors import UnsupportedDatabase

SQLITE_BUSY_TIMEOUT_S = 30.0
"""How long a SQLite writer waits for another process's write lock before failing."""

_IMMEDIATE = "selauto_sqlite_begin_immediate"


def default_url(data_dir: Path) -> str:
    """The SQLite store under the data directory: ``sqlite:///<data_dir>/feedback.db`` (absolute).

    The rule lives in :meth:`~selective_autonomy.config.StoreSettings.resolved_url`; this names its default case.
    """
    return StoreSettings().resolved_url(data_dir)


def create_store_engine(url: str | URL) -> Engine:
    """An engine for ``sqlite:///...`` or ``postgresql+psycopg://...``; a SQLite file's folder is created."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(parsed)
    if backend == "postgresql":
        return create_engine(parsed, pool_pre_ping=True)
    raise UnsupportedDatabase(f"unsupported database {backend!r}: use sqlite:/// or postgresql+psycopg://")


def _sqlite_engine(url: URL) -> Engine:
    database = url.database or ""
    in_memory = database in ("", ":memory:") or url.query.get("mode") == "memory"
    if not in_memory and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # the driver never emits BEGIN; _on_begin does
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
            if not in_memory:
                _use_wal(cursor)
            # In WAL mode NORMAL survives any process crash; only an OS crash or power loss can
            # lose the last commits. FULL would fsync every feedback row and cap the feedback
            # agent at a few hundred rows/s. PostgreSQL is the production store.
            cursor.execute("PRAGMA synchronous = NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        immediate = connection.get_execution_options().get(_IMMEDIATE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def _use_wal(cursor: Any) -> None:
    """Switch the database file to WAL (persistent: once per file), waiting out other connections.

    SQLite refuses the switch while another connection holds a lock, and answers "database is
    locked" at once: the busy timeout does not cover it. Four threads opening a new store together
    failed 29 times in 200 (one of them while another was already migrating), so the switch is
    tried again until it takes or the busy timeout has passed, as a writer would wait.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_S
    while cursor.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        try:
            if cursor.execute("PRAGMA journal_mode = WAL").fetchone()[0] == "wal":
                return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise sqlite3.OperationalError("database is locked: could not switch it to WAL")
        time.sleep(0.01)


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction that commits on success; on SQLite it holds the write lock from BEGIN."""
    with engine.connect() as connection:
        connection.execution_options(**{_IMMEDIATE: True})
        with connection.begin():
            yield connection


@contextmanager
def read_transaction(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction that only reads (one consistent snapshot), rolled back at the end."""
    with engine.connect() as connection, connection.begin():
        yield connection
