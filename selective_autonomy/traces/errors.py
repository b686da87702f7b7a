"""Errors raised while importing, reading or splitting traces; all derive from :class:`SelautoError`."""

from __future__ import annotations

from selective_autonomy.errors import SelautoError


class TraceError(SelautoError):
    """Root of the trace package's errors, so callers can catch one type for any bad input."""


class TraceFormatError(TraceError):
    """A trace file (JSONL) holds a line that is not a valid case."""


class MappingError(TraceError):
    """An event-log mapping is invalid or does not fit the log it is applied to."""


class SourceFormatError(TraceError):
    """A source dataset (event log, SGD, ABCD) does not have the structure the importer expects."""
