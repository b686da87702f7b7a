"""Dead letters: a consumed record that could not be decoded or validated is kept whole, with the
reason, on the dead-letter topic; the consumer then moves on."""

from __future__ import annotations

from selective_autonomy.schemas.events import DeadLetter

MAX_ERROR_CHARS = 2000


def dead_letter_for(
    original: bytes | None,
    key: bytes | None,
    topic: str,
    partition: int,
    offset: int,
    error: BaseException | str,
) -> DeadLetter:
    """The dead-letter record for one failed input record."""
    if isinstance(error, BaseException):
        error_type = type(error).__name__
        message = str(error) or error_type
    else:
        error_type = "Rejected"
        message = error
    return DeadLetter(
        original=original or b"",
        key=key,
        topic=topic,
        partition=partition,
        offset=offset,
        error=message[:MAX_ERROR_CHARS],
        error_type=error_type,
    )
