"""The store's tables (SQLAlchemy Core), the one description autogenerate compares migrations against.

JSON payloads are kept as text written by pydantic (``model_dump_json``) so that they read back
exactly on SQLite and PostgreSQL alike. Times are stored in UTC and read back UTC-aware.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

ID = 255  # length of ids and names
ENUM = 32  # length of enum symbols
AUDIT = "deferral_id IS NULL AND suggestion_action_id IS NOT NULL"  # feedback on a step that ran
EXPLORATION = "reason = 'exploration'"  # a proposal deferred only because its session is in the holdout


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware datetime stored in UTC (naive UTC text on SQLite, timestamptz on PostgreSQL)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: the store only keeps timezone-aware times")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"a timestamp column returned {type(value).__name__}, not a datetime")
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


proposals = Table(
    "proposals",
    metadata,
    Column("proposal_id", String(ID), primary_key=True),
    Column("session_id", String(ID), nullable=False),
    Column("process_id", String(ID), nullable=False),
    Column("business_cluster", String(ID), nullable=False),
    Column("state_version", Integer, nullable=False),
    Column("event", Text, nullable=False),  # UIStateChanged as JSON
    Column("suggestion", Text, nullable=True),  # Action as JSON
    Column("suggestion_action_id", String(ID), nullable=True),
    Column("tier", String(ENUM), nullable=True),
    Column("candidates", Text, nullable=False),  # ranked [{action, probability}] as JSON
    Column("policy_probability", Float, nullable=True),
    Column("critic_score", Float, nullable=True),
    Column("threshold", Float, nullable=True),
    Column("policy_version", String(ID), nullable=True),
    Column("critic_version", String(ID), nullable=True),
    Column("stage", String(ENUM), nullable=False),
    Column("outcome", String(ENUM), nullable=False),
    Column("reason", String(ENUM), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("inclusion_probability", Float, nullable=True),  # P(labelled whatever its score); None: depends on it
    CheckConstraint("outcome IN ('deferred', 'executed')", name="outcome"),
    Index(None, "process_id", "business_cluster"),
    Index(None, "session_id"),
    # The exploration holdout's deferrals (a few percent of the rows): judged_unattended joins their
    # answers without reading every proposal. See FeedbackStore.judged_unattended.
    Index(
        "ix_proposals_exploration",
        "process_id",
        "created_at",
        sqlite_where=text(EXPLORATION),
        postgresql_where=text(EXPLORATION),
    ),
)

feedback = Table(
    "feedback",
    metadata,
    Column("feedback_id", String(ID), primary_key=True),
    Column("schema_version", Integer, nullable=False),
    Column("deferral_id", String(ID), nullable=True),
    Column("session_id", String(ID), nullable=False),
    Column("process_id", String(ID), nullable=False),
    Column("business_cluster", String(ID), nullable=False),
    Column("state_version", Integer, nullable=False),
    Column("suggestion", Text, nullable=True),  # Action as JSON
    Column("suggestion_action_id", String(ID), nullable=True),
    Column("verdict", String(ENUM), nullable=False),
    Column("operator_action", Text, nullable=True),  # Action as JSON
    Column("operator_id", String(ID), nullable=False),
    Column("latency_ms", Integer, nullable=False),
    Column("policy_probability", Float, nullable=True),
    Column("critic_score", Float, nullable=True),
    Column("policy_version", String(ID), nullable=True),
    Column("critic_version", String(ID), nullable=True),
    Column("given_at", UTCDateTime, nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    Column("inclusion_probability", Float, nullable=True),  # an audit's sampling probability
    CheckConstraint("verdict IN ('accepted', 'corrected', 'acceptable_alternative')", name="verdict"),
    Index(None, "deferral_id"),
    Index(None, "process_id", "business_cluster", "given_at"),
    Index(None, "process_id", "given_at"),  # the learning loop reads a process's newest feedback first
    # Audits (a few percent of the rows), for the precision monitor: see FeedbackStore.judged_unattended.
    Index("ix_feedback_audits", "process_id", "received_at", sqlite_where=text(AUDIT), postgresql_where=text(AUDIT)),
)

applied_actions = Table(
    "applied_actions",
    metadata,
    Column("action_id", String(ID), primary_key=True),
    Column("session_id", String(ID), nullable=False),
    Column("action_type", String(ID), nullable=False),
    Column("status", String(ENUM), nullable=False),
    Column("detail", Text, nullable=False),
    Column("claimed_at", UTCDateTime, nullable=False),
    Column("applied_at", UTCDateTime, nullable=True),
    CheckConstraint("status IN ('claimed', 'applied', 'failed')", name="status"),
)

stage_transitions = Table(
    "stage_transitions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("process_id", String(ID), nullable=False),
    Column("business_cluster", String(ID), nullable=False),
    Column("from_stage", String(ENUM), nullable=True),
    Column("to_stage", String(ENUM), nullable=False),
    Column("reason", Text, nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("changed_by", String(ID), nullable=True),  # who set it by hand; null: the learning loop
    Index(None, "process_id", "business_cluster", "at"),
)

# Every hand control (a stage set or released, autonomy paused or resumed, a proposed promotion
# confirmed): who, when, why. One that moved the stage is also a row of stage_transitions.
hand_controls = Table(
    "hand_controls",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("process_id", String(ID), nullable=False),
    Column("scope", String(ID), nullable=False),  # a business cluster, or '*' for the whole process
    Column("control", String(ENUM), nullable=False),
    Column("stage", String(ENUM), nullable=True),  # the stage set ('stage'), selective ('confirm'), else null
    Column("reason", Text, nullable=False),
    Column("changed_by", String(ID), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    CheckConstraint("control IN ('stage', 'release', 'pause', 'resume', 'confirm')", name="control"),
    Index(None, "process_id", "at"),
)

model_versions = Table(
    "model_versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(ENUM), nullable=False),
    Column("process_id", String(ID), nullable=False),
    Column("version", String(ID), nullable=False),
    Column("path", Text, nullable=False),
    Column("metrics", Text, nullable=False),  # JSON object
    Column("promoted", Boolean, nullable=False),
    Column("promoted_at", UTCDateTime, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Index("uq_model_versions_kind_process_id_version", "kind", "process_id", "version", unique=True),
    # At most one promoted version per (kind, process): enforced by the database, not by luck.
    Index(
        "uq_model_versions_promoted",
        "kind",
        "process_id",
        unique=True,
        sqlite_where=text("promoted"),
        postgresql_where=text("promoted"),
    ),
)

# Changes made by hand to what is in service (a process added, models deployed or rolled back):
# who, when, why, and the service pointer revision each one published. Append-only. ``kind`` has
# no CHECK constraint: a new kind of hand change needs a member in ServiceChangeKind, no migration.
service_changes = Table(
    "service_changes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("process_id", String(ID), nullable=False),
    Column("revision", Integer, nullable=False),
    Column("kind", String(ENUM), nullable=False),
    Column("policy", String(ID), nullable=True),  # policy version in service after the change
    Column("critic", String(ID), nullable=True),  # critic version; NULL: the policy-confidence critic
    Column("changed_by", String(ID), nullable=False),
    Column("reason", Text, nullable=False),
    Column("detail", Text, nullable=False),  # what the change voided
    Column("at", UTCDateTime, nullable=False),
    Index(None, "process_id", "at"),
)

# Every UIStateChanged, as recorded from ui.state: the operators' own traces, the training data of a
# policy learned live (see FeedbackStore.append_traces). One row per (process, session, state
# version): a redelivered record finds its key and is not stored twice.
traces = Table(
    "traces",
    metadata,
    Column("process_id", String(ID), primary_key=True),
    Column("session_id", String(ID), primary_key=True),
    Column("state_version", Integer, primary_key=True),
    Column("business_cluster", String(ID), nullable=False),
    Column("event_id", String(ID), nullable=False),
    Column("state_at", UTCDateTime, nullable=False),  # the event's timestamp (the platform's clock)
    Column("actor", String(ENUM), nullable=False),
    Column("ui_state", Text, nullable=False),  # UIState as JSON
    Column("last_action", Text, nullable=True),  # Action as JSON: what produced this state
    Column("received_at", UTCDateTime, nullable=False),
)

# One row per recorded session, kept up to date in the transaction that appends its states, so that
# "which sessions are complete cases" is an index range on this table, not a GROUP BY over every
# recorded state (which grows with the store).
trace_sessions = Table(
    "trace_sessions",
    metadata,
    Column("process_id", String(ID), primary_key=True),
    Column("session_id", String(ID), primary_key=True),
    Column("business_cluster", String(ID), nullable=False),  # of the first state stored
    Column("first_at", UTCDateTime, nullable=False),
    Column("last_at", UTCDateTime, nullable=False),
    Column("states", Integer, nullable=False),
    Column("operator_steps", Integer, nullable=False),  # states an operator's action produced
    Column("last_operator_version", Integer, nullable=True),
    Column("last_operator_action", String(ID), nullable=True),  # action type of the newest operator step
    Index(None, "process_id", "last_at"),
)
