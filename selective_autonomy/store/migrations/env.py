"""Alembic environment of the feedback store.

:func:`selective_autonomy.store.migrate` passes an open connection (already in a transaction
holding the migration lock) in ``config.attributes["connection"]``. Without one, the URL in the
``sqlalchemy.url`` option is used, e.g. by ``alembic revision --autogenerate`` run with a Config
from :func:`selective_autonomy.store.migration.alembic_config`.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from selective_autonomy.store.engine import create_store_engine, write_transaction
from selective_autonomy.store.tables import metadata


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
        compare_type=True,
    )


def run_offline() -> None:
    context.configure(
        url=context.config.get_main_option("sqlalchemy.url"),
        target_metadata=metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = context.config.attributes.get("connection")
    if isinstance(connection, Connection):
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = context.config.get_main_option("sqlalchemy.url")
    if url is None:
        raise RuntimeError("no connection passed in config.attributes and no sqlalchemy.url option")
    engine = create_store_engine(url)
    try:
        with write_transaction(engine) as own:
            _configure(own)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
