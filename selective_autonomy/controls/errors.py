"""Errors of the hand controls; each names what the person asked for and why it cannot be done."""

from __future__ import annotations

from selective_autonomy.errors import SelautoError


class ControlError(SelautoError):
    """Root of the hand controls' errors."""


class UnknownProcess(ControlError):
    """No process schema in the models directory under this id."""


class UnknownCluster(ControlError):
    """The process schema has no business cluster of this name."""


class NothingToChange(ControlError):
    """Resume where nothing is paused, release where no stage is held."""


class NothingPending(NothingToChange):
    """Confirm where no promotion is pending: none was proposed, it was confirmed already, or the
    certificate it rested on was replaced or voided since."""


class HeldByHand(ControlError):
    """A control another hand control forbids: confirming a promotion of a paused cluster (or of a
    paused process), or of one whose stage a person set."""
