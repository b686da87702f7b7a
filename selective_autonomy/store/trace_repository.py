"""UI traces recorded from ``ui.state`` and the per-session summaries that make "how many complete
cases" and "the newest N cases" cheap however large the table grows.

Idempotent by (process, session, state version); append-only.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, case, func, or_, select
from sqlalchemy.engine import RowMapping

from selective_autonomy.schemas.event_parts import Actor, UIState, utc_now
from selective_autonomy.schemas.events import UIStateChanged
from selective_autonomy.store.base import Repository
from selective_autonomy.store.engine import read_transaction, write_transaction
from selective_autonomy.store.models import CaseCompletion, RecordedSession, RecordedState
from selective_autonomy.store.tables import trace_sessions, traces
from selective_autonomy.store.upsert import CHUNK, upsert
from selective_autonomy.store.values import action_from, action_json, from_row


class TraceRepository(Repository):
    """The operators' UI traces, by process and session."""

    def append_traces(self, states: Sequence[UIStateChanged], *, received_at: datetime | None = None) -> int:
        """Record UI states, all in one transaction; return how many were new.

        Idempotent by (process, session, state version): a redelivered state is not stored twice and
        leaves its session's summary alone (only the rows this insert really added are counted, so
        two writers racing on one session count each state once).
        """
        unique: dict[tuple[str, str, int], UIStateChanged] = {}
        for state in states:
            unique.setdefault((state.process_id, state.session_id, state.state_version), state)
        if not unique:
            return 0
        now = received_at or utc_now()
        rows = [_trace_row(state, now) for state in unique.values()]
        added: list[UIStateChanged] = []
        with write_transaction(self._engine) as connection:
            for start in range(0, len(rows), CHUNK):
                statement = (
                    upsert(connection, traces)
                    .values(rows[start : start + CHUNK])
                    .on_conflict_do_nothing(index_elements=[c.name for c in traces.primary_key.columns])
                    .returning(traces.c.process_id, traces.c.session_id, traces.c.state_version)
                )
                added += [unique[(p, s, v)] for p, s, v in connection.execute(statement)]
            summaries = _session_summaries(added)
            for start in range(0, len(summaries), CHUNK):
                _merge_sessions(connection, summaries[start : start + CHUNK])
        return len(added)

    def count_complete_cases(self, process_id: str, completion: CaseCompletion, *, at_most: int | None = None) -> int:
        """How many recorded sessions of the process are complete cases (see :class:`CaseCompletion`).

        :param at_most: stop counting here (default: count all). "Are there at least N?" then costs
            about N index entries plus the sessions still open, however large the store grows.
        """
        with read_transaction(self._engine) as connection:
            complete = _complete_sessions(connection, process_id, completion)
            if complete is None:
                return 0
            query = select(trace_sessions.c.session_id).where(complete)
            if at_most is not None:
                query = query.limit(at_most)
            return int(connection.execute(select(func.count()).select_from(query.subquery())).scalar_one())

    def recorded_cases(
        self,
        process_id: str,
        completion: CaseCompletion,
        *,
        newest: int,
        since: datetime | None = None,
    ) -> list[RecordedSession]:
        """The newest complete cases of a process with their states, oldest first (by first state).

        :param newest: at most this many cases, the most recently active ones: the window that
            bounds a learning run's cost as the table grows.
        :param since: only sessions whose first state is at or after this time (default: all); a
            retraining reads what came after the data its policy saw.
        """
        with read_transaction(self._engine) as connection:
            complete = _complete_sessions(connection, process_id, completion)
            if complete is None:
                return []
            query = select(trace_sessions).where(complete)
            if since is not None:
                query = query.where(trace_sessions.c.first_at >= since)
            query = query.order_by(trace_sessions.c.last_at.desc(), trace_sessions.c.session_id.desc()).limit(newest)
            sessions = connection.execute(query).mappings().all()
            ids = [row["session_id"] for row in sessions]
            states: dict[str, list[RecordedState]] = {}
            for start in range(0, len(ids), CHUNK):
                rows = connection.execute(
                    select(traces)
                    .where(traces.c.process_id == process_id, traces.c.session_id.in_(ids[start : start + CHUNK]))
                    .order_by(traces.c.session_id, traces.c.state_version)
                ).mappings()
                for row in rows:
                    states.setdefault(row["session_id"], []).append(_recorded_state(row))
        cases = [
            RecordedSession(
                process_id=process_id,
                session_id=row["session_id"],
                business_cluster=row["business_cluster"],
                first_at=row["first_at"],
                last_at=row["last_at"],
                closed=row["last_operator_action"] in completion.ending_actions,
                states=states.get(row["session_id"], []),
            )
            for row in sessions
        ]
        return sorted(cases, key=lambda c: (c.first_at, c.session_id))


def _trace_row(state: UIStateChanged, received_at: datetime) -> dict[str, Any]:
    return {
        "process_id": state.process_id,
        "session_id": state.session_id,
        "state_version": state.state_version,
        "business_cluster": state.business_cluster,
        "event_id": state.event_id,
        "state_at": state.timestamp,
        "actor": state.actor.value,
        "ui_state": state.ui_state.model_dump_json(),
        "last_action": action_json(state.last_action),
        "received_at": received_at,
    }


def _recorded_state(row: RowMapping) -> RecordedState:
    return from_row(
        RecordedState,
        row,
        timestamp=row["state_at"],
        ui_state=UIState.model_validate_json(row["ui_state"]),
        last_action=action_from(row["last_action"]),
    )


def _session_summaries(added: Sequence[UIStateChanged]) -> list[dict[str, Any]]:
    """One summary row per session of the newly stored states, sorted by key (a fixed lock order)."""
    grouped: dict[tuple[str, str], list[UIStateChanged]] = {}
    for state in added:
        grouped.setdefault((state.process_id, state.session_id), []).append(state)
    rows = []
    for (process_id, session_id), states in sorted(grouped.items()):
        steps = [s for s in states if s.actor is Actor.operator and s.last_action is not None]
        newest = max(steps, key=lambda s: s.state_version, default=None)
        rows.append(
            {
                "process_id": process_id,
                "session_id": session_id,
                "business_cluster": min(states, key=lambda s: s.state_version).business_cluster,
                "first_at": min(s.timestamp for s in states),
                "last_at": max(s.timestamp for s in states),
                "states": len(states),
                "operator_steps": len(steps),
                "last_operator_version": None if newest is None else newest.state_version,
                "last_operator_action": None
                if newest is None or newest.last_action is None
                else newest.last_action.action_type,
            }
        )
    return rows


def _merge_sessions(connection: Connection, rows: list[dict[str, Any]]) -> None:
    """Add newly stored states to their sessions' summaries (insert the first time)."""
    statement = upsert(connection, trace_sessions).values(rows)
    new, old = statement.excluded, trace_sessions.c
    least, greatest = (func.least, func.greatest) if connection.dialect.name == "postgresql" else (func.min, func.max)
    newer_step = and_(
        new.last_operator_version.is_not(None),
        or_(old.last_operator_version.is_(None), new.last_operator_version > old.last_operator_version),
    )
    connection.execute(
        statement.on_conflict_do_update(
            index_elements=[old.process_id, old.session_id],
            set_={
                "first_at": least(old.first_at, new.first_at),
                "last_at": greatest(old.last_at, new.last_at),
                "states": old.states + new.states,
                "operator_steps": old.operator_steps + new.operator_steps,
                "last_operator_version": case((newer_step, new.last_operator_version), else_=old.last_operator_version),
                "last_operator_action": case((newer_step, new.last_operator_action), else_=old.last_operator_action),
            },
        )
    )


def _complete_sessions(connection: Connection, process_id: str, completion: CaseCompletion) -> Any | None:
    """The WHERE clause of a process's complete cases; None when it has no recorded session."""
    clock = connection.execute(
        select(func.max(trace_sessions.c.last_at)).where(trace_sessions.c.process_id == process_id)
    ).scalar_one_or_none()
    if clock is None:
        return None
    ended = trace_sessions.c.last_operator_action.in_(sorted(completion.ending_actions))
    idle = trace_sessions.c.last_at <= clock - timedelta(seconds=completion.idle_s)
    return and_(trace_sessions.c.process_id == process_id, trace_sessions.c.operator_steps > 0, or_(ended, idle))
