"""Proposals (what the gate decided, with its context) and operator feedback on them.

Both are idempotent on their ids (a redelivery is a no-op that returns False) and append-only.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import false, func, literal_column, select, true, union_all
from sqlalchemy.engine import RowMapping
from sqlalchemy.sql.elements import ColumnElement

from selective_autonomy.schemas.event_parts import DeferralReason, RankedAction, Verdict, utc_now
from selective_autonomy.schemas.events import CopilotFeedback, UIStateChanged
from selective_autonomy.store.base import Repository
from selective_autonomy.store.engine import read_transaction, write_transaction
from selective_autonomy.store.models import (
    FeedbackWithContext,
    JudgedStep,
    ProposalOutcome,
    ProposalRecord,
    StoreCounts,
)
from selective_autonomy.store.tables import feedback, proposals
from selective_autonomy.store.upsert import insert_many, insert_new
from selective_autonomy.store.values import action_from, action_json, enum_value, from_row

_CANDIDATES = TypeAdapter(list[RankedAction])
_PROPOSAL_PREFIX = "p_"
_EXPLORATION: ColumnElement[str] = literal_column(f"'{DeferralReason.exploration.value}'")


class FeedbackRepository(Repository):
    """Proposals and the operators' answers to them."""

    def record_proposal(self, proposal: ProposalRecord) -> bool:
        """Keep the context of a suggestion; False (and nothing changed) if its id is already there."""
        with write_transaction(self._engine) as connection:
            return insert_new(connection, proposals, _proposal_row(proposal))

    def record_proposals(self, items: Sequence[ProposalRecord]) -> None:
        """Many proposals in one transaction (replays, bulk imports); existing ids are left alone."""
        if items:
            with write_transaction(self._engine) as connection:
                insert_many(connection, proposals, [_proposal_row(p) for p in items])

    def proposal(self, proposal_id: str) -> ProposalRecord | None:
        with read_transaction(self._engine) as connection:
            row = connection.execute(select(proposals).where(proposals.c.proposal_id == proposal_id)).mappings().first()
        return None if row is None else _proposal(row)

    def record_feedback(self, item: CopilotFeedback, *, received_at: datetime | None = None) -> bool:
        """Append one operator answer; False (and nothing changed) if its feedback_id is already there."""
        with write_transaction(self._engine) as connection:
            return insert_new(connection, feedback, _feedback_row(item, received_at))

    def record_feedbacks(self, items: Sequence[CopilotFeedback]) -> None:
        """Many answers in one transaction; existing feedback ids are left alone."""
        if items:
            with write_transaction(self._engine) as connection:
                insert_many(connection, feedback, [_feedback_row(item, None) for item in items])

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
        # The selected columns are exactly JudgedStep's fields (audit comes back a bool from its Boolean
        # literal on both backends); pydantic turns the verdict's text into the member.
        return [JudgedStep.model_validate(dict(row)) for row in rows]

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


def _proposal_row(proposal: ProposalRecord) -> dict[str, Any]:
    return {
        "proposal_id": proposal.proposal_id,
        "session_id": proposal.session_id,
        "process_id": proposal.process_id,
        "business_cluster": proposal.business_cluster,
        "state_version": proposal.state_version,
        "event": proposal.event.model_dump_json(),
        "suggestion": action_json(proposal.suggestion),
        "suggestion_action_id": proposal.suggestion_action_id,
        "tier": enum_value(proposal.tier),
        "candidates": _CANDIDATES.dump_json(proposal.candidates).decode(),
        "policy_probability": proposal.policy_probability,
        "critic_score": proposal.critic_score,
        "threshold": proposal.threshold,
        "policy_version": proposal.policy_version,
        "critic_version": proposal.critic_version,
        "stage": proposal.stage.value,
        "outcome": proposal.outcome.value,
        "reason": enum_value(proposal.reason),
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
        "suggestion": action_json(item.suggestion),
        "suggestion_action_id": item.suggestion_action_id,
        "verdict": item.verdict.value,
        "operator_action": action_json(item.operator_action),
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
    return from_row(
        CopilotFeedback,
        row,
        suggestion=action_from(row["suggestion"]),
        operator_action=action_from(row["operator_action"]),
    )


def _proposal(row: RowMapping, prefix: str = "") -> ProposalRecord:
    """The proposal in ``row``, whose columns carry ``prefix`` when it was joined to its feedback."""
    return from_row(
        ProposalRecord,
        row,
        prefix,
        event=UIStateChanged.model_validate_json(row[prefix + "event"]),
        suggestion=action_from(row[prefix + "suggestion"]),
        candidates=_CANDIDATES.validate_json(row[prefix + "candidates"]),
    )
