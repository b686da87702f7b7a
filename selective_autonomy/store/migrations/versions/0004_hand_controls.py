"""Hand controls: who set a stage by hand (``stage_transitions.changed_by``, null for the learning
loop), and the history of every stage set or released and every pause and resume (``hand_controls``).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-10
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = 255
ENUM = 32


def upgrade() -> None:
    with op.batch_alter_table("stage_transitions") as batch:
        batch.add_column(sa.Column("changed_by", sa.String(ID), nullable=True))
    op.create_table(
        "hand_controls",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("process_id", sa.String(ID), nullable=False),
        sa.Column("scope", sa.String(ID), nullable=False),
        sa.Column("control", sa.String(ENUM), nullable=False),
        sa.Column("stage", sa.String(ENUM), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("changed_by", sa.String(ID), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("control IN ('stage', 'release', 'pause', 'resume')", name=op.f("ck_hand_controls_control")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hand_controls")),
    )
    op.create_index(op.f("ix_hand_controls_process_id_at"), "hand_controls", ["process_id", "at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_hand_controls_process_id_at"), table_name="hand_controls")
    op.drop_table("hand_controls")
    with op.batch_alter_table("stage_transitions") as batch:
        batch.drop_column("changed_by")
