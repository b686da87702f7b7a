"""Errors raised by the session simulator; all derive from :class:`SelautoError`."""

from __future__ import annotations

from selective_autonomy.errors import SelautoError


class SimulatorError(SelautoError):
    """Root of the simulator's errors: bad replay input, or a synthetic case its schema rejects."""
