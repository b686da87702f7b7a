"""The action ledger: which executed actions were claimed and how applying each ended.

A claim is an idempotent insert, so exactly one caller across all processes applies an action; a
redelivery finds the claim.
"""

from __future__ import annotations

from sqlalchemy import select, update

from selective_autonomy.schemas.event_parts import utc_now
from selective_autonomy.store.base import Repository
from selective_autonomy.store.engine import read_transaction, write_transaction
from selective_autonomy.store.errors import UnknownAction
from selective_autonomy.store.models import ActionStatus, AppliedAction
from selective_autonomy.store.tables import applied_actions
from selective_autonomy.store.upsert import insert_new


class ActionLedger(Repository):
    """Claims and outcomes of applied actions."""

    def claim_action(self, action_id: str, session_id: str, action_type: str) -> bool:
        """Claim the right to apply an action: True for exactly one caller across all processes.

        A redelivered or recomputed action finds the claim and gets False, whatever its status.
        """
        row = {
            "action_id": action_id,
            "session_id": session_id,
            "action_type": action_type,
            "status": ActionStatus.claimed.value,
            "detail": "",
            "claimed_at": utc_now(),
            "applied_at": None,
        }
        with write_transaction(self._engine) as connection:
            return insert_new(connection, applied_actions, row)

    def mark_action(self, action_id: str, status: ActionStatus, detail: str = "") -> None:
        """Record how applying a claimed action ended (``applied`` or ``failed``)."""
        if status is ActionStatus.claimed:
            raise ValueError("mark an action applied or failed; claim it with claim_action")
        query = (
            update(applied_actions)
            .where(applied_actions.c.action_id == action_id)
            .values(status=status.value, detail=detail, applied_at=utc_now())
        )
        with write_transaction(self._engine) as connection:
            if connection.execute(query).rowcount != 1:
                raise UnknownAction(f"action {action_id} was never claimed")

    def applied_action(self, action_id: str) -> AppliedAction | None:
        query = select(applied_actions).where(applied_actions.c.action_id == action_id)
        with read_transaction(self._engine) as connection:
            row = connection.execute(query).mappings().first()
        return None if row is None else AppliedAction.model_validate(dict(row))

    def was_applied(self, action_id: str) -> bool:
        found = self.applied_action(action_id)
        return found is not None and found.status is ActionStatus.applied
