"""Every case of the store (``tests/support/store_cases.py`` and ``trace_store_cases.py``, which the unit
tests run on SQLite), re-run on a real PostgreSQL server.

The server is started once per session with initdb and pg_ctl (see ``postgres.py``); each case
gets a fresh database. A machine without the PostgreSQL binaries fails here, it does not skip.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.postgres import PostgresServer, PostgresUnavailable
from tests.support.store_cases import *  # noqa: F403  (the cases and their fixtures, re-collected here)
from tests.support.trace_store_cases import *  # noqa: F403

pytestmark = pytest.mark.integration


@pytest.fixture(params=["postgresql"])  # type: ignore[no-redef]  # replaces the imported sqlite one
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    failure = ""
    try:
        with PostgresServer.running() as server:
            yield server
    except PostgresUnavailable as error:
        failure = str(error)
    if failure:  # fail, not skip: these cases are part of the suite (outside the except: no chained traceback)
        pytest.fail(f"cannot run PostgreSQL for the store tests: {failure}", pytrace=False)


@pytest.fixture
def postgresql_database_url(postgres_server: PostgresServer) -> Iterator[str]:
    with postgres_server.database() as url:
        yield url
