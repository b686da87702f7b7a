"""Errors of the operator console; each carries the HTTP status it maps to (the project's one HTTP
error model, :mod:`selective_autonomy.webapi.errors`)."""

from __future__ import annotations

from selective_autonomy.webapi.errors import HttpError


class ConsoleError(HttpError):
    """Root of the console's errors."""

    status_code = 500
    code = "console_error"


class CardGone(ConsoleError):
    """The deferral is not pending any more: answered, superseded by a newer state, or unknown."""

    status_code = 409
    code = "card_gone"


class AnswerRefused(ConsoleError):
    """The answer does not fit the deferral or the process's action grammar."""

    status_code = 422
    code = "answer_refused"


class AnswerNotDelivered(ConsoleError):
    """The broker did not acknowledge the answer's records; the card is back in the inbox."""

    status_code = 503
    code = "not_delivered"


class AuditGone(CardGone):
    """The audit is not pending any more: answered (here or in another console), dropped, or unknown."""

    code = "audit_gone"


class NotSupervisor(ConsoleError):
    """A hand control asked for by an operator who is not in ``console.supervisors``."""

    status_code = 403
    code = "not_supervisor"


class ControlRefused(ConsoleError):
    """A hand control that names no cluster of the process (422), or has nothing to change (409)."""

    status_code = 422
    code = "control_refused"


class NothingToControl(ConsoleError):
    """Resume where nothing is paused, release where no stage is held, confirm where no promotion is pending."""

    status_code = 409
    code = "nothing_to_change"


class ControlHeld(ConsoleError):
    """A hand control another one forbids: confirming the promotion of a paused cluster, or of one
    whose stage a person set."""

    status_code = 409
    code = "held"


class StoreUnavailable(ConsoleError):
    """The feedback store, where hand controls are recorded, could not be opened."""

    status_code = 503
    code = "store_unavailable"
