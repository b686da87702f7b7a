"""One HTTP error model for every API of the project (the operator console and the ingest webhook).

A refusal is an :class:`HttpError` that carries its status and a stable ``code``; each app turns it
(and FastAPI's own refusals, see :mod:`selective_autonomy.webapi.responses`) into the one
:class:`ErrorResponse` body, so a client reads the errors of every selauto API the same way.
Pydantic only: protocol modules import this without FastAPI.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from selective_autonomy.errors import SelautoError


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Violation(_Body):
    """One reason a request was refused: where (a dotted path into the body) and what."""

    loc: str = Field(description="Dotted path into the body, e.g. ui_state.fields.plan; 'body' for the whole.")
    msg: str


class ItemViolations(_Body):
    """The violations of one item of a batch."""

    index: int
    violations: list[Violation]


class ErrorResponse(_Body):
    """Every refusal: a stable ``error`` code, a sentence, and the violations when the body was at fault."""

    error: str = Field(
        description="A stable code: unauthenticated, forbidden, not_found, method_not_allowed, invalid_request, "
        "or the API's own (e.g. invalid_event, card_gone, not_delivered)."
    )
    message: str
    violations: list[Violation] = Field(default_factory=list, description="What in the body was refused.")
    items: list[ItemViolations] = Field(default_factory=list, description="For a batch: only the bad items.")


class HttpError(SelautoError):
    """A request that cannot be served; ``status_code`` and ``code`` say how to answer."""

    status_code: ClassVar[int] = 500
    code: ClassVar[str] = "error"

    def __init__(
        self, message: str, violations: Sequence[Violation] = (), items: Sequence[ItemViolations] = ()
    ) -> None:
        super().__init__(message)
        self.message = message
        self.violations = list(violations)
        self.items = list(items)

    @property
    def messages(self) -> list[str]:
        """What to show a person: each violation's message, or the error's own sentence."""
        return [v.msg for v in self.violations] or [self.message]

    def body(self) -> ErrorResponse:
        return ErrorResponse(error=self.code, message=self.message, violations=self.violations, items=self.items)
