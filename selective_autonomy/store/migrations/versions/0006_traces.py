"""The trace table: every UIStateChanged recorded from ui.state (idempotent by process, session and
state version), and one summary row per recorded session so that complete cases are found without
reading every state.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = 255
ENUM = 32


def upgrade() -> None:
    op.create_table(
        "traces",
        sa.Column("process_id", sa.String(ID), nullable=False),
        sa.Column("session_id", sa.String(ID), nullable=False),
        sa.Column("state_version", sa.Integer(), nullable=False),
        sa.Column("business_cluster", sa.String(ID), nullable=False),
        sa.Column("event_id", sa.String(ID), nullable=False),
        sa.Column("state_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(ENUM), nullable=False),
        sa.Column("ui_state", sa.Text(), nullable=False),
        sa.Column("last_action", sa.Text(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("process_id", "session_id", "state_version", name=op.f("pk_traces")),
    )
    op.create_table(
        "trace_sessions",
        sa.Column("process_id", sa.String(ID), nullable=False),
        sa.Column("session_id", sa.String(ID), nullable=False),
        sa.Column("business_cluster", sa.String(ID), nullable=False),
        sa.Column("first_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("states", sa.Integer(), nullable=False),
        sa.Column("operator_steps", sa.Integer(), nullable=False),
        sa.Column("last_operator_version", sa.Integer(), nullable=True),
        sa.Column("last_operator_action", sa.String(ID), nullable=True),
        sa.PrimaryKeyConstraint("process_id", "session_id", name=op.f("pk_trace_sessions")),
    )
    op.create_index(op.f("ix_trace_sessions_process_id_last_at"), "trace_sessions", ["process_id", "last_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_trace_sessions_process_id_last_at"), table_name="trace_sessions")
    op.drop_table("trace_sessions")
    op.drop_table("traces")
