"""Errors of the feedback store; all derive from the project's one root."""

from __future__ import annotations

from selective_autonomy.errors import SelautoError


class StoreError(SelautoError):
    """The feedback store could not do what was asked."""


class UnsupportedDatabase(StoreError):
    """The URL names a database the store does not support (only SQLite and PostgreSQL)."""


class SchemaNotReady(StoreError):
    """The database schema is missing or older than this code: run :func:`migrate` first."""


class UnknownAction(StoreError):
    """An action was marked that was never claimed."""


class UnknownModelVersion(StoreError):
    """A model version was promoted that was never recorded."""
