"""Errors of the edges; each is a :class:`~selective_autonomy.errors.SelautoError`."""

from __future__ import annotations

from selective_autonomy.errors import SelautoError


class EdgeError(SelautoError):
    """Root of the ingest's and the executor's errors."""


class NotDelivered(EdgeError):
    """The broker did not acknowledge a record within the bounded wait (or refused it)."""


class TemplateError(EdgeError):
    """A request template is malformed, or cannot be rendered for one action."""


class AuthFailure(EdgeError):
    """A webhook caller did not authenticate: ``status_code`` 401 (no credentials) or 403 (wrong ones)."""

    def __init__(self, message: str, status_code: int) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
