"""Schema migrations, applied in code: the alembic scripts ship inside the package, no alembic.ini.

Concurrent starts are safe: on PostgreSQL the upgrade holds an advisory lock, on SQLite the
database write lock, so a second process waits and then finds the schema at head.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

from selective_autonomy.store.engine import create_store_engine, write_transaction
from selective_autonomy.store.errors import SchemaNotReady, StoreError

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

_PG_LOCK_KEY = 0x5E1A_F00D  # pg_advisory_xact_lock key held while migrating


def alembic_config(url: str | None = None) -> Config:
    """An alembic Config built in code; ``url`` only matters for alembic commands run without a connection."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise StoreError("the store's migrations are missing (the package ships at least one)")
    return head


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def migrate(target: str | Engine) -> str:
    """Create or upgrade the schema to the newest revision; returns that revision. Idempotent."""
    engine = create_store_engine(target) if isinstance(target, str) else target
    try:
        with write_transaction(engine) as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
            config = alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
            revision = current_revision(connection)
    finally:
        if isinstance(target, str):
            engine.dispose()
    if revision is None:
        raise StoreError("the store's schema has no revision after upgrading to head")
    return revision


def check_schema(engine: Engine) -> None:
    """Raise :class:`SchemaNotReady` unless the database is at the newest revision."""
    with engine.connect() as connection:
        current = current_revision(connection)
    head = head_revision()
    if current != head:
        raise SchemaNotReady(
            f"feedback store schema is at {current or 'nothing (empty database)'}, this code needs {head}: "
            "open it with migrate=True or run selective_autonomy.store.migrate(url)"
        )
