"""Stage transitions per process and business cluster, and the hand controls people set (both
append-only: the history of what moved, who moved it and why)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, select

from selective_autonomy.schemas.event_parts import Stage, utc_now
from selective_autonomy.store.base import Repository
from selective_autonomy.store.engine import read_transaction, write_transaction
from selective_autonomy.store.models import HandControl, HandControlRecord, StageTransition
from selective_autonomy.store.tables import hand_controls, stage_transitions
from selective_autonomy.store.upsert import insert_returning_id
from selective_autonomy.store.values import enum_value


class StageRepository(Repository):
    """Stage history and hand controls."""

    def record_stage_transition(
        self,
        process_id: str,
        business_cluster: str,
        to_stage: Stage,
        *,
        reason: str = "",
        at: datetime | None = None,
        changed_by: str | None = None,
    ) -> StageTransition:
        """Append a stage change; ``from_stage`` is the latest recorded stage (None the first time).

        :param changed_by: who set it by hand; default None, the learning loop.
        """
        with write_transaction(self._engine) as connection:
            previous = _latest_stage(connection, process_id, business_cluster)
            row = {
                "process_id": process_id,
                "business_cluster": business_cluster,
                "from_stage": enum_value(previous),
                "to_stage": to_stage.value,
                "reason": reason,
                "at": at or utc_now(),
                "changed_by": changed_by,
            }
            new_id = insert_returning_id(connection, stage_transitions, row)
            return StageTransition.model_validate({**row, "id": new_id})

    def stage_history(self, process_id: str, business_cluster: str) -> list[StageTransition]:
        """Every recorded change of one process / cluster, oldest first."""
        query = (
            select(stage_transitions)
            .where(_stage_key(process_id, business_cluster))
            .order_by(stage_transitions.c.at, stage_transitions.c.id)
        )
        with read_transaction(self._engine) as connection:
            rows = connection.execute(query).mappings().all()
        return [StageTransition.model_validate(dict(row)) for row in rows]

    def latest_stage(self, process_id: str, business_cluster: str) -> Stage | None:
        with read_transaction(self._engine) as connection:
            return _latest_stage(connection, process_id, business_cluster)

    # hand controls -----------------------------------------------------------------------------

    def record_hand_control(
        self,
        process_id: str,
        scope: str,
        control: HandControl,
        *,
        reason: str,
        changed_by: str,
        stage: Stage | None = None,
        at: datetime | None = None,
    ) -> HandControlRecord:
        """Append one hand control (append-only: the history of who did what by hand, and why)."""
        row = {
            "process_id": process_id,
            "scope": scope,
            "control": control.value,
            "stage": enum_value(stage),
            "reason": reason,
            "changed_by": changed_by,
            "at": at or utc_now(),
        }
        with write_transaction(self._engine) as connection:
            new_id = insert_returning_id(connection, hand_controls, row)
        return HandControlRecord.model_validate({**row, "id": new_id})

    def hand_controls(self, process_id: str, newest: int | None = None) -> list[HandControlRecord]:
        """The process's hand controls, oldest first; only the ``newest`` ones when given."""
        query = (
            select(hand_controls)
            .where(hand_controls.c.process_id == process_id)
            .order_by(hand_controls.c.at.desc(), hand_controls.c.id.desc())
        )
        if newest is not None:
            query = query.limit(newest)
        with read_transaction(self._engine) as connection:
            rows = connection.execute(query).mappings().all()
        return [HandControlRecord.model_validate(dict(row)) for row in reversed(rows)]


def _stage_key(process_id: str, business_cluster: str) -> Any:
    return and_(stage_transitions.c.process_id == process_id, stage_transitions.c.business_cluster == business_cluster)


def _latest_stage(connection: Connection, process_id: str, business_cluster: str) -> Stage | None:
    query = (
        select(stage_transitions.c.to_stage)
        .where(_stage_key(process_id, business_cluster))
        .order_by(stage_transitions.c.at.desc(), stage_transitions.c.id.desc())
        .limit(1)
    )
    latest = connection.execute(query).scalar_one_or_none()
    return None if latest is None else Stage(latest)
