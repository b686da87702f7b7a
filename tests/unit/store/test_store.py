"""The feedback store against a real database: the cases of ``tests/support/store_cases.py``, each on a
SQLite file in ``tmp_path`` (``tests/integration/test_store_postgres.py`` runs them on PostgreSQL)."""

from tests.support.store_cases import *  # noqa: F403  (the cases and their fixtures, collected here)
