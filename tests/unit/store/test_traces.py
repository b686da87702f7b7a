"""The store's trace table: the cases of ``tests/support/trace_store_cases.py`` on SQLite
(``tests/integration/test_store_postgres.py`` runs them on PostgreSQL)."""

from tests.support.trace_store_cases import *  # noqa: F403  (the cases and their fixtures, collected here)
