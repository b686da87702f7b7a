"""Initial schema: proposals, feedback, applied_actions, stage_transitions, model_versions.

Revision ID: 0001
Revises:
Create Date: 2025-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = 255
ENUM = 32


def upgrade() -> None:
    op.create_table(
        "proposals",
        sa.Column("proposal_id", sa.String(ID), nullable=False),
        sa.Column("session_id", sa.String(ID), nullable=False),
        sa.Column("process_id", sa.String(ID), nullable=False),
        sa.Column("business_cluster", sa.String(ID), nullable=False),
        sa.Column("state_version", sa.Integer(), nullable=False),
        sa.Column("event", sa.Text(), nullable=False),
        sa.Column("suggestion", sa.Text(), nullable=True),
        sa.Column("suggestion_action_id", sa.String(ID), nullable=True),
        sa.Column("tier", sa.String(ENUM), nullable=True),
        sa.Column("candidates", sa.Text(), nullable=False),
        sa.Column("policy_probability", sa.Float(), nullable=True),
        sa.Column("critic_score", sa.Float(), nullable=True),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column("policy_version", sa.String(ID), nullable=True),
        sa.Column("critic_version", sa.String(ID), nullable=True),
        sa.Column("stage", sa.String(ENUM), nullable=False),
        sa.Column("outcome", sa.String(ENUM), nullable=False),
        sa.Column("reason", sa.String(ENUM), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("outcome IN ('deferred', 'executed')", name=op.f("ck_proposals_outcome")),
        sa.PrimaryKeyConstraint("proposal_id", name=op.f("pk_proposals")),
    )
    op.create_index(op.f("ix_proposals_process_id_business_cluster"), "proposals", ["process_id", "business_cluster"])
    op.create_index(op.f("ix_proposals_session_id"), "proposals", ["session_id"])

    op.create_table(
        "feedback",
        sa.Column("feedback_id", sa.String(ID), nullable=False),
        sa.Column("schema_version", sa.Integer(), nullable=False),
        sa.Column("deferral_id", sa.String(ID), nullable=True),
        sa.Column("session_id", sa.String(ID), nullable=False),
        sa.Column("process_id", sa.String(ID), nullable=False),
        sa.Column("business_cluster", sa.String(ID), nullable=False),
        sa.Column("state_version", sa.Integer(), nullable=False),
        sa.Column("suggestion", sa.Text(), nullable=True),
        sa.Column("suggestion_action_id", sa.String(ID), nullable=True),
        sa.Column("verdict", sa.String(ENUM), nullable=False),
        sa.Column("operator_action", sa.Text(), nullable=True),
        sa.Column("operator_id", sa.String(ID), nullable=False),
        sa.Column("latency_ms", sa.Integer(), nullable=False),
        sa.Column("policy_probability", sa.Float(), nullable=True),
        sa.Column("critic_score", sa.Float(), nullable=True),
        sa.Column("policy_version", sa.String(ID), nullable=True),
        sa.Column("critic_version", sa.String(ID), nullable=True),
        sa.Column("given_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "verdict IN ('accepted', 'corrected', 'acceptable_alternative')", name=op.f("ck_feedback_verdict")
        ),
        sa.PrimaryKeyConstraint("feedback_id", name=op.f("pk_feedback")),
    )
    op.create_index(op.f("ix_feedback_deferral_id"), "feedback", ["deferral_id"])
    op.create_index(
        op.f("ix_feedback_process_id_business_cluster_given_at"),
        "feedback",
        ["process_id", "business_cluster", "given_at"],
    )

    op.create_table(
        "applied_actions",
        sa.Column("action_id", sa.String(ID), nullable=False),
        sa.Column("session_id", sa.String(ID), nullable=False),
        sa.Column("action_type", sa.String(ID), nullable=False),
        sa.Column("status", sa.String(ENUM), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('claimed', 'applied', 'failed')", name=op.f("ck_applied_actions_status")),
        sa.PrimaryKeyConstraint("action_id", name=op.f("pk_applied_actions")),
    )

    op.create_table(
        "stage_transitions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("process_id", sa.String(ID), nullable=False),
        sa.Column("business_cluster", sa.String(ID), nullable=False),
        sa.Column("from_stage", sa.String(ENUM), nullable=True),
        sa.Column("to_stage", sa.String(ENUM), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stage_transitions")),
    )
    op.create_index(
        op.f("ix_stage_transitions_process_id_business_cluster_at"),
        "stage_transitions",
        ["process_id", "business_cluster", "at"],
    )

    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(ENUM), nullable=False),
        sa.Column("process_id", sa.String(ID), nullable=False),
        sa.Column("version", sa.String(ID), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("metrics", sa.Text(), nullable=False),
        sa.Column("promoted", sa.Boolean(), nullable=False),
        sa.Column("promoted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_versions")),
    )
    op.create_index(
        "uq_model_versions_kind_process_id_version", "model_versions", ["kind", "process_id", "version"], unique=True
    )
    op.create_index(
        "uq_model_versions_promoted",
        "model_versions",
        ["kind", "process_id"],
        unique=True,
        sqlite_where=sa.text("promoted"),
        postgresql_where=sa.text("promoted"),
    )


def downgrade() -> None:
    for table in ("model_versions", "stage_transitions", "applied_actions", "feedback", "proposals"):
        op.drop_table(table)
