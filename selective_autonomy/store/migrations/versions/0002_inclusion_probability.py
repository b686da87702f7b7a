"""Inclusion probabilities (how likely a step was to be labelled whatever its score) on proposals and
feedback, and an index for reading a process's newest feedback first (the learning loop's window).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("proposals") as batch:
        batch.add_column(sa.Column("inclusion_probability", sa.Float(), nullable=True))
    with op.batch_alter_table("feedback") as batch:
        batch.add_column(sa.Column("inclusion_probability", sa.Float(), nullable=True))
    op.create_index("ix_feedback_process_id_given_at", "feedback", ["process_id", "given_at"])


def downgrade() -> None:
    op.drop_index("ix_feedback_process_id_given_at", table_name="feedback")
    with op.batch_alter_table("feedback") as batch:
        batch.drop_column("inclusion_probability")
    with op.batch_alter_table("proposals") as batch:
        batch.drop_column("inclusion_probability")
