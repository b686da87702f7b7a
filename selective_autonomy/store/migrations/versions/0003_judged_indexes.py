"""Partial indexes for the precision monitor's read (``FeedbackStore.judged_unattended``): audits on
feedback and exploration deferrals on proposals. Without them every monitor run read every feedback
row since the cluster went selective and every proposal (bench/bench_learning_cost.py).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As in tables.py at this revision (a migration never imports the current tables).
AUDIT = "deferral_id IS NULL AND suggestion_action_id IS NOT NULL"
EXPLORATION = "reason = 'exploration'"


def upgrade() -> None:
    op.create_index(
        "ix_feedback_audits",
        "feedback",
        ["process_id", "received_at"],
        sqlite_where=sa.text(AUDIT),
        postgresql_where=sa.text(AUDIT),
    )
    op.create_index(
        "ix_proposals_exploration",
        "proposals",
        ["process_id", "created_at"],
        sqlite_where=sa.text(EXPLORATION),
        postgresql_where=sa.text(EXPLORATION),
    )


def downgrade() -> None:
    op.drop_index("ix_proposals_exploration", table_name="proposals")
    op.drop_index("ix_feedback_audits", table_name="feedback")
