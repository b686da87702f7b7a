"""The durable feedback store: proposals, operator feedback, applied actions, stages, model versions
and the UI traces recorded from ``ui.state``.

Every insert of something that arrives from a topic is idempotent on its id (a redelivery is a
no-op that returns False; a trace's id is its process, session and state version); feedback, traces
and stage transitions are append-only. One store may be used
from several threads; several processes may share one database.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from pydantic import JsonValue, TypeAdapter
from sqlalchemy import (
    Connection,
    Engine,
    Table,
    and_,
    case,
    false,
    func,
    literal_column,
    or_,
    select,
    true,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import RowMapping
from sqlalchemy.sql.elements import ColumnElement

from selective_autonomy.inference.protocol import Candidate
from selective_autonomy.schemas.events import (
    Action,
    ActionTier,
    Actor,
    CopilotFeedback,
    DeferralReason,
    Stage,
    UIState,
    UIStateChanged,
    Verdict,
    utc_now,
)
from selective_autonomy.store.engine import create_store_engine, read_transaction, write_transaction
from selective_autonomy.store.errors import UnknownAction, UnknownModelVersion, UnsupportedDatabase
from selective_autonomy.store.migration import check_schema
from selective_autonomy.store.migration import migrate as migrate_schema
from selective_autonomy.store.models import (
    ActionStatus,
    AppliedAction,
    CaseCompletion,
    FeedbackWithContext,
    HandControl,
    HandControlRecord,
    JudgedStep,
    ModelKind,
    ModelVersion,
    ProposalOutcome,
    ProposalRecord,
    RecordedSession,
    RecordedState,
    ServiceChange,
    ServiceChangeKind,
    StageTransition,
    StoreCounts,
)
from selective_autonomy.store.tables import (
    applied_actions,
    feedback,
    hand_controls,
    model_versions,
    proposals,
    service_changes,
    stage_transitions,
    trace_sessions,
    traces,
)

_CANDIDATES = TypeAdapter(list[Candidate])
_METRICS = TypeAdapter(dict[str, JsonValue])
_PROPOSAL_PREFIX = "p_"
_EXPLORATION: ColumnElement[str] = literal_column(f"'{DeferralReason.exploration.value}'")
_CHUNK = 500  # rows per multi-row INSERT and ids per IN list: well under SQLite's 32,766 bound parameters


class FeedbackStore:
    """Typed access to the store's tables; build it with :meth:`open`."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @classmethod
    def open(cls, url: str, *, migrate: bool = True) -> FeedbackStore:
        """Connect to ``url`` (``sqlite:///path`` or ``postgresql+psycopg://...``).

        :param migrate: create or upgrade the schema first (default True); when False, raise
            :class:`~selective_autonomy.store.errors.SchemaNotReady` unless it is already at head.
        """
        engine = create_store_engine(url)
        try:
            if migrate:
                migrate_schema(engine)
            else:
                check_schema(engine)
        except BaseException:
            engine.dispose()
            raise
        return cls(engine)

    @property
    def engine(self) -> Engine:
        return self._engine

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    # proposals and feedback -------------------------------------------------------------------

    def record_proposal(self, proposal: ProposalRecord) -> bool:
        """Keep the context of a suggestion; False (and nothing changed) if its id is already there."""
        with write_transaction(self._engine) as connection:
            return _insert_new(connection, proposals, _proposal_row(proposal))

    def record_proposals(self, items: Sequence[ProposalRecord]) -> None:
        """Many proposals in one transaction (replays, bulk imports); existing ids are left alone."""
        if items:
            with write_transaction(self._engine) as connection:
                _insert_many(connection, proposals, [_proposal_row(p) for p in items])

    def proposal(self, proposal_id: str) -> ProposalRecord | None:
        with read_transaction(self._engine) as connection:
            row = connection.execute(select(proposals).where(proposals.c.proposal_id == proposal_id)).mappings().first()
        return None if row is None else _proposal(row)

    def record_feedback(self, item: CopilotFeedback, *, received_at: datetime | None = None) -> bool:
        """Append one operator answer; False (and nothing changed) if its feedback_id is already there."""
        with write_transaction(self._engine) as connection:
            return _insert_new(connection, feedback, _feedback_row(item, received_at))

    def record_feedbacks(self, items: Sequence[CopilotFeedback]) -> None:
        """Many answers in one transaction; existing feedback ids are left alone."""
        if items:
            with write_transaction(self._engine) as connection:
                _insert_many(connection, feedback, [_feedback_row(item, None) for item in items])

    def feedback_with_context(
        self,
        process_id: str | None = None,
        cluster: str | None = None,
        since: datetime | None = None,
        *,
        newest: int | None = None,
    ) -> list[FeedbackWithContext]:
        """Feedback joined with the proposal it answers (``deferral_id = proposal_id``), oldest first.

        Feedback whose proposal was never recorded is returned with ``context=None``.

        :param process_id: only this process (default: all).
        :param cluster: only this business cluster (default: all).
        :param since: only feedback given at or after this time (default: all).
        :param newest: only the newest N records (default: all); the learning loop's window, so that
            its cost does not grow with the store.
        """
        return self._joined(_feedback_filters(process_id, cluster, since), newest)

    def judged_unattended(self, process_id: str, since: datetime | None = None) -> list[JudgedStep]:
        """Audits, and answers to exploration steps the gate would have executed, received at or after
        ``since``, in the order they were received: the precision monitor's outcomes (few: a sample
        of the executed steps; no state is read).

        The clock is ``received_at``, not ``given_at``: the monitor must see every answer that reached
        the store after a cluster went selective, and an answer can be given (in log or platform
        time) before the newest copilot answer that certified the cluster and still arrive later.
        Filtering on ``given_at`` lost every such answer (BPI 2012: the monitor saw none)."""
        # Two index-driven parts, not one outer join filtered afterwards. Measured on PostgreSQL
        # (bench/bench_learning_cost.py, EXPLAIN ANALYZE): `feedback LEFT JOIN proposals WHERE audit
        # OR reason = exploration` can only be decided after the join, so every monitor run read
        # every feedback row since the cluster went selective and hashed every proposal: 2.5 s and
        # 1.6 GB of pages at 1M records, growing with the store, for ~14k rows returned. The audits
        # (ix_feedback_audits) and the exploration deferrals (ix_proposals_exploration, then their
        # answers by deferral_id) are partial indexes, so the cost follows the rows returned.
        columns = (
            feedback.c.feedback_id,
            feedback.c.process_id,
            feedback.c.business_cluster,
            feedback.c.verdict,
            feedback.c.critic_version,
            feedback.c.given_at,
            feedback.c.received_at,
        )
        filters: list[Any] = [feedback.c.process_id == process_id]
        if since is not None:
            filters.append(feedback.c.received_at >= since)
        audits = select(
            *columns, feedback.c.inclusion_probability.label("inclusion_probability"), true().label("audit")
        ).where(*filters, feedback.c.deferral_id.is_(None), feedback.c.suggestion_action_id.is_not(None))
        explored = (
            select(*columns, proposals.c.inclusion_probability.label("inclusion_probability"), false().label("audit"))
            .select_from(proposals.join(feedback, feedback.c.deferral_id == proposals.c.proposal_id))
            # A deferral and its answer belong to one process. The reason is inlined, not bound: the
            # planner must see that the query implies the partial index's predicate.
            .where(*filters, proposals.c.process_id == process_id, proposals.c.reason == _EXPLORATION)
        )
        judged = union_all(audits, explored).subquery()
        query = select(judged).order_by(judged.c.received_at, judged.c.feedback_id)
        with read_transaction(self._engine) as connection:
            rows = connection.execute(query).mappings().all()
        return [
            JudgedStep(
                feedback_id=row["feedback_id"],
                process_id=row["process_id"],
                business_cluster=row["business_cluster"],
                verdict=Verdict(row["verdict"]),
                audit=bool(row["audit"]),
                inclusion_probability=row["inclusion_probability"],
                critic_version=row["critic_version"],
                given_at=row["given_at"],
                received_at=row["received_at"],
            )
            for row in rows
        ]

    def _joined(self, filters: list[Any], newest: int | None) -> list[FeedbackWithContext]:
        labelled = [column.label(_PROPOSAL_PREFIX + column.name) for column in proposals.c]
        query = (
            select(feedback, *labelled)
            .select_from(feedback.outerjoin(proposals, feedback.c.deferral_id == proposals.c.proposal_id))
            .where(*filters)
        )
        if newest is None:
            query = query.order_by(feedback.c.given_at, feedback.c.feedback_id)
        else:
            query = query.order_by(feedback.c.given_at.desc(), feedback.c.feedback_id.desc()).limit(newest)
        with read_transaction(self._engine) as connection:
            rows = connection.execute(query).mappings().all()
        if newest is not None:
            rows = list(reversed(rows))
        return [
            FeedbackWithContext(
                feedback=_feedback(row),
                received_at=row["received_at"],
                context=None if row[_PROPOSAL_PREFIX + "proposal_id"] is None else _proposal(row, _PROPOSAL_PREFIX),
            )
            for row in rows
        ]

    def counts(self, process_id: str | None = None) -> StoreCounts:
        """Feedback by verdict and proposals by outcome, for reports (every key present)."""
        by_verdict = dict.fromkeys(Verdict, 0)
        by_outcome = dict.fromkeys(ProposalOutcome, 0)
        verdicts = select(feedback.c.verdict, func.count()).where(*_feedback_filters(process_id, None, None))
        outcomes = select(proposals.c.outcome, func.count())
        orphans = (
            select(func.count())
            .select_from(feedback.outerjoin(proposals, feedback.c.deferral_id == proposals.c.proposal_id))
            .where(proposals.c.proposal_id.is_(None), *_feedback_filters(process_id, None, None))
        )
        if process_id is not None:
            outcomes = outcomes.where(proposals.c.process_id == process_id)
        with read_transaction(self._engine) as connection:
            for verdict, count in connection.execute(verdicts.group_by(feedback.c.verdict)):
                by_verdict[Verdict(verdict)] = count
            for outcome, count in connection.execute(outcomes.group_by(proposals.c.outcome)):
                by_outcome[ProposalOutcome(outcome)] = count
            without_proposal = connection.execute(orphans).scalar_one()
        return StoreCounts(
            feedback_by_verdict=by_verdict, proposals_by_outcome=by_outcome, feedback_without_proposal=without_proposal
        )

    # traces -----------------------------------------------------------------------------------

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
            for start in range(0, len(rows), _CHUNK):
                statement = (
                    _upsert_base(connection, traces)
                    .values(rows[start : start + _CHUNK])
                    .on_conflict_do_nothing(index_elements=[c.name for c in traces.primary_key.columns])
                    .returning(traces.c.process_id, traces.c.session_id, traces.c.state_version)
                )
                added += [unique[(p, s, v)] for p, s, v in connection.execute(statement)]
            summaries = _session_summaries(added)
            for start in range(0, len(summaries), _CHUNK):
                _merge_sessions(connection, summaries[start : start + _CHUNK])
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
            for start in range(0, len(ids), _CHUNK):
                rows = connection.execute(
                    select(traces)
                    .where(traces.c.process_id == process_id, traces.c.session_id.in_(ids[start : start + _CHUNK]))
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

    # applied actions --------------------------------------------------------------------------

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
            return _insert_new(connection, applied_actions, row)

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

    # stages -----------------------------------------------------------------------------------

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
                "from_stage": _value(previous),
                "to_stage": to_stage.value,
                "reason": reason,
                "at": at or utc_now(),
                "changed_by": changed_by,
            }
            new_id = connection.execute(stage_transitions.insert().values(row)).inserted_primary_key
            assert new_id is not None
            return StageTransition.model_validate({**row, "id": new_id[0]})

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
            "stage": _value(stage),
            "reason": reason,
            "changed_by": changed_by,
            "at": at or utc_now(),
        }
        with write_transaction(self._engine) as connection:
            new_id = connection.execute(hand_controls.insert().values(row)).inserted_primary_key
        assert new_id is not None
        return HandControlRecord.model_validate({**row, "id": new_id[0]})

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

    # model versions ---------------------------------------------------------------------------

    def record_model_version(
        self,
        kind: ModelKind,
        process_id: str,
        version: str,
        path: str | Path,
        metrics: Mapping[str, JsonValue] | None = None,
        *,
        promoted: bool = False,
        created_at: datetime | None = None,
    ) -> ModelVersion:
        """Register a trained model; a version already registered is kept as it was (idempotent).

        :param promoted: also make it the promoted version of its kind and process (default False).
        """
        row = {
            "kind": kind.value,
            "process_id": process_id,
            "version": version,
            "path": str(path),
            "metrics": _METRICS.dump_json(dict(metrics or {})).decode(),
            "promoted": False,
            "promoted_at": None,
            "created_at": created_at or utc_now(),
        }
        with write_transaction(self._engine) as connection:
            _insert_new(connection, model_versions, row, conflict=("kind", "process_id", "version"))
            if promoted:
                _promote(connection, kind, process_id, version)
            stored = _model_version(connection, kind, process_id, version)
        assert stored is not None
        return stored

    def promote(self, kind: ModelKind, process_id: str, version: str) -> ModelVersion:
        """Make ``version`` the one promoted version of its kind and process; the previous one is demoted."""
        with write_transaction(self._engine) as connection:
            _promote(connection, kind, process_id, version)
            stored = _model_version(connection, kind, process_id, version)
        assert stored is not None
        return stored

    def promoted_version(self, kind: ModelKind, process_id: str) -> ModelVersion | None:
        query = select(model_versions).where(
            model_versions.c.kind == kind.value,
            model_versions.c.process_id == process_id,
            model_versions.c.promoted.is_(True),
        )
        with read_transaction(self._engine) as connection:
            row = connection.execute(query).mappings().first()
        return None if row is None else _model_version_from(row)

    def model_versions(self, kind: ModelKind, process_id: str) -> list[ModelVersion]:
        """Every registered version of one kind and process, oldest first."""
        query = (
            select(model_versions)
            .where(model_versions.c.kind == kind.value, model_versions.c.process_id == process_id)
            .order_by(model_versions.c.created_at, model_versions.c.id)
        )
        with read_transaction(self._engine) as connection:
            rows = connection.execute(query).mappings().all()
        return [_model_version_from(row) for row in rows]

    # changes made by hand ---------------------------------------------------------------------

    def record_service_change(
        self,
        process_id: str,
        kind: ServiceChangeKind,
        *,
        revision: int,
        changed_by: str,
        policy: str | None = None,
        critic: str | None = None,
        reason: str = "",
        detail: str = "",
        at: datetime | None = None,
    ) -> ServiceChange:
        """Append who changed what is in service by hand, and why.

        :param revision: the service pointer revision the change published.
        :param policy: policy version in service after the change (default None: none).
        :param critic: critic version in service after it (default None: the policy-confidence critic).
        """
        row = {
            "process_id": process_id,
            "revision": revision,
            "kind": kind.value,
            "policy": policy,
            "critic": critic,
            "changed_by": changed_by,
            "reason": reason,
            "detail": detail,
            "at": at or utc_now(),
        }
        with write_transaction(self._engine) as connection:
            new_id = connection.execute(service_changes.insert().values(row)).inserted_primary_key
        assert new_id is not None
        return ServiceChange.model_validate({**row, "id": new_id[0]})

    def service_changes(self, process_id: str) -> list[ServiceChange]:
        """Every change made by hand to one process, oldest first."""
        query = (
            select(service_changes)
            .where(service_changes.c.process_id == process_id)
            .order_by(service_changes.c.at, service_changes.c.id)
        )
        with read_transaction(self._engine) as connection:
            rows = connection.execute(query).mappings().all()
        return [ServiceChange.model_validate(dict(row)) for row in rows]


def _insert_new(
    connection: Connection, table: Table, row: Mapping[str, Any], conflict: Sequence[str] | None = None
) -> bool:
    """INSERT ... ON CONFLICT DO NOTHING: True if the row was inserted, False if its key was there.

    Atomic across processes: the database decides which of two racing inserts wins.
    """
    keys = list(conflict) if conflict is not None else [column.name for column in table.primary_key.columns]
    dialect = connection.dialect.name
    if dialect == "postgresql":
        statement: Any = postgresql.insert(table).values(row).on_conflict_do_nothing(index_elements=keys)
    elif dialect == "sqlite":
        statement = sqlite.insert(table).values(row).on_conflict_do_nothing(index_elements=keys)
    else:
        raise UnsupportedDatabase(f"unsupported database {dialect!r}")
    inserted = connection.execute(statement, execution_options={"preserve_rowcount": True}).rowcount
    return bool(inserted == 1)


def _proposal_row(proposal: ProposalRecord) -> dict[str, Any]:
    return {
        "proposal_id": proposal.proposal_id,
        "session_id": proposal.session_id,
        "process_id": proposal.process_id,
        "business_cluster": proposal.business_cluster,
        "state_version": proposal.state_version,
        "event": proposal.event.model_dump_json(),
        "suggestion": _action_json(proposal.suggestion),
        "suggestion_action_id": proposal.suggestion_action_id,
        "tier": _value(proposal.tier),
        "candidates": _CANDIDATES.dump_json(proposal.candidates).decode(),
        "policy_probability": proposal.policy_probability,
        "critic_score": proposal.critic_score,
        "threshold": proposal.threshold,
        "policy_version": proposal.policy_version,
        "critic_version": proposal.critic_version,
        "stage": proposal.stage.value,
        "outcome": proposal.outcome.value,
        "reason": _value(proposal.reason),
        "created_at": proposal.created_at,
        "inclusion_probability": proposal.inclusion_probability,
    }


def _feedback_row(item: CopilotFeedback, received_at: datetime | None) -> dict[str, Any]:
    return {
        "feedback_id": item.feedback_id,
        "schema_version": item.schema_version,
        "deferral_id": item.deferral_id,
        "session_id": item.session_id,
        "process_id": item.process_id,
        "business_cluster": item.business_cluster,
        "state_version": item.state_version,
        "suggestion": _action_json(item.suggestion),
        "suggestion_action_id": item.suggestion_action_id,
        "verdict": item.verdict.value,
        "operator_action": _action_json(item.operator_action),
        "operator_id": item.operator_id,
        "latency_ms": item.latency_ms,
        "policy_probability": item.policy_probability,
        "critic_score": item.critic_score,
        "policy_version": item.policy_version,
        "critic_version": item.critic_version,
        "given_at": item.given_at,
        "received_at": received_at or utc_now(),
        "inclusion_probability": item.inclusion_probability,
    }


def _insert_many(connection: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    keys = [column.name for column in table.primary_key.columns]
    dialect = connection.dialect.name
    if dialect == "postgresql":
        statement: Any = postgresql.insert(table).on_conflict_do_nothing(index_elements=keys)
    elif dialect == "sqlite":
        statement = sqlite.insert(table).on_conflict_do_nothing(index_elements=keys)
    else:
        raise UnsupportedDatabase(f"unsupported database {dialect!r}")
    connection.execute(statement, rows)


def _value(member: Stage | ActionTier | DeferralReason | None) -> str | None:
    return None if member is None else member.value


def _action_json(action: Action | None) -> str | None:
    return None if action is None else action.model_dump_json()


def _action(text: str | None) -> Action | None:
    return None if text is None else Action.model_validate_json(text)


def _feedback_filters(process_id: str | None, cluster: str | None, since: datetime | None) -> list[Any]:
    filters: list[Any] = []
    if process_id is not None:
        filters.append(feedback.c.process_id == process_id)
    if cluster is not None:
        filters.append(feedback.c.business_cluster == cluster)
    if since is not None:
        filters.append(feedback.c.given_at >= since)
    return filters


def _feedback(row: RowMapping) -> CopilotFeedback:
    return CopilotFeedback(
        schema_version=row["schema_version"],
        feedback_id=row["feedback_id"],
        deferral_id=row["deferral_id"],
        session_id=row["session_id"],
        process_id=row["process_id"],
        business_cluster=row["business_cluster"],
        state_version=row["state_version"],
        suggestion=_action(row["suggestion"]),
        suggestion_action_id=row["suggestion_action_id"],
        verdict=Verdict(row["verdict"]),
        operator_action=_action(row["operator_action"]),
        operator_id=row["operator_id"],
        latency_ms=row["latency_ms"],
        policy_probability=row["policy_probability"],
        critic_score=row["critic_score"],
        policy_version=row["policy_version"],
        critic_version=row["critic_version"],
        given_at=row["given_at"],
        inclusion_probability=row["inclusion_probability"],
    )


def _proposal(row: RowMapping, prefix: str = "") -> ProposalRecord:
    def get(name: str) -> Any:
        return row[prefix + name]

    reason, tier = get("reason"), get("tier")
    return ProposalRecord(
        proposal_id=get("proposal_id"),
        session_id=get("session_id"),
        process_id=get("process_id"),
        business_cluster=get("business_cluster"),
        state_version=get("state_version"),
        event=UIStateChanged.model_validate_json(get("event")),
        suggestion=_action(get("suggestion")),
        suggestion_action_id=get("suggestion_action_id"),
        tier=None if tier is None else ActionTier(tier),
        candidates=_CANDIDATES.validate_json(get("candidates")),
        policy_probability=get("policy_probability"),
        critic_score=get("critic_score"),
        threshold=get("threshold"),
        policy_version=get("policy_version"),
        critic_version=get("critic_version"),
        stage=Stage(get("stage")),
        outcome=ProposalOutcome(get("outcome")),
        reason=None if reason is None else DeferralReason(reason),
        created_at=get("created_at"),
        inclusion_probability=get("inclusion_probability"),
    )


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


def _promote(connection: Connection, kind: ModelKind, process_id: str, version: str) -> None:
    same = and_(model_versions.c.kind == kind.value, model_versions.c.process_id == process_id)
    target = model_versions.c.version == version
    # Demote first: the partial unique index allows one promoted row per (kind, process) at any time.
    connection.execute(
        update(model_versions).where(same, model_versions.c.promoted.is_(True), ~target).values(promoted=False)
    )
    promoted = connection.execute(
        update(model_versions)
        .where(same, target, model_versions.c.promoted.is_(False))
        .values(promoted=True, promoted_at=utc_now())
    )
    if promoted.rowcount == 0 and _model_version(connection, kind, process_id, version) is None:
        raise UnknownModelVersion(f"{kind.value} {version} of process {process_id} was never recorded")


def _model_version(connection: Connection, kind: ModelKind, process_id: str, version: str) -> ModelVersion | None:
    query = select(model_versions).where(
        model_versions.c.kind == kind.value,
        model_versions.c.process_id == process_id,
        model_versions.c.version == version,
    )
    row = connection.execute(query).mappings().first()
    return None if row is None else _model_version_from(row)


def _model_version_from(row: RowMapping) -> ModelVersion:
    return ModelVersion(
        kind=ModelKind(row["kind"]),
        process_id=row["process_id"],
        version=row["version"],
        path=row["path"],
        metrics=_METRICS.validate_json(row["metrics"]),
        promoted=bool(row["promoted"]),
        promoted_at=row["promoted_at"],
        created_at=row["created_at"],
    )


def _upsert_base(connection: Connection, table: Table) -> Any:
    dialect = connection.dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise UnsupportedDatabase(f"unsupported database {dialect!r}")


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
        "last_action": _action_json(state.last_action),
        "received_at": received_at,
    }


def _recorded_state(row: RowMapping) -> RecordedState:
    return RecordedState(
        process_id=row["process_id"],
        session_id=row["session_id"],
        business_cluster=row["business_cluster"],
        state_version=row["state_version"],
        event_id=row["event_id"],
        timestamp=row["state_at"],
        actor=Actor(row["actor"]),
        ui_state=UIState.model_validate_json(row["ui_state"]),
        last_action=_action(row["last_action"]),
        received_at=row["received_at"],
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
    statement = _upsert_base(connection, trace_sessions).values(rows)
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
