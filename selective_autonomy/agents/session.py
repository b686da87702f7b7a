"""Per-session state kept in the worker's faust table, and the rules that use it.

The table is keyed by session id (the same key as ``ui.state``), so each worker holds exactly the
sessions of its partitions and restores them from the changelog after a restart.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from selective_autonomy.agents.gate import GateOutcome, SessionProgress
from selective_autonomy.schemas.event_parts import Actor
from selective_autonomy.schemas.events import UIStateChanged

RECENT_ACTION_IDS = 32


class Skip(StrEnum):
    stale = "stale"  # older than a state already decided
    duplicate = "duplicate"  # the same state version again (redelivery)
    ended = "ended"  # the screen an ending action left (close_chat): nothing is left to decide


def ends_session(event: UIStateChanged, ending_actions: frozenset[str]) -> bool:
    """Whether ``event`` is the screen a session's ending action left (``learning.trace_ending_actions``).

    A platform reports it like any other state (the trace recorder needs it: it marks a recorded
    case complete), but nothing may be suggested or executed in a session that was closed.
    """
    return event.last_action is not None and event.last_action.action_type in ending_actions


class SessionState(BaseModel):
    model_config = ConfigDict(frozen=True)

    last_state_version: int = -1
    pending_deferral_id: str | None = None
    autonomous_steps: int = 0
    decisions: int = 0
    executed_action_ids: list[str] = Field(default_factory=list)

    def skip_reason(self, event: UIStateChanged) -> Skip | None:
        """Why ``event`` must not be decided again, or None when it is new."""
        if event.state_version < self.last_state_version:
            return Skip.stale
        if event.state_version == self.last_state_version:
            return Skip.duplicate
        return None

    def already_executed(self, action_id: str | None) -> bool:
        return action_id is not None and action_id in self.executed_action_ids

    @property
    def progress(self) -> SessionProgress:
        return SessionProgress(autonomous_steps=self.autonomous_steps)

    def after(
        self, event: UIStateChanged, outcome: GateOutcome, action_id: str | None, deferral_id: str | None
    ) -> SessionState:
        """The state once ``event`` was decided with ``outcome``.

        An operator's step clears the pending deferral: the session resumes autonomously from the
        state the operator left.
        """
        pending = None if event.actor is Actor.operator else self.pending_deferral_id
        executed = self.executed_action_ids
        steps = self.autonomous_steps
        if outcome is GateOutcome.execute and action_id is not None:
            executed = [*executed, action_id][-RECENT_ACTION_IDS:]
            steps += 1
        if outcome is GateOutcome.defer:
            pending = deferral_id
        return SessionState(
            last_state_version=event.state_version,
            pending_deferral_id=pending,
            autonomous_steps=steps,
            decisions=self.decisions + 1,
            executed_action_ids=executed,
        )
