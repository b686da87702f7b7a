"""The ``service_changes`` table: who changed what is in service by hand (a process added, models
deployed or rolled back), when, why, and the service pointer revision it published.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-10
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As in tables.py at this revision (a migration never imports the current tables).
ID = 255
ENUM = 32


def upgrade() -> None:
    op.create_table(
        "service_changes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("process_id", sa.String(ID), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(ENUM), nullable=False),
        sa.Column("policy", sa.String(ID), nullable=True),
        sa.Column("critic", sa.String(ID), nullable=True),
        sa.Column("changed_by", sa.String(ID), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_service_changes")),
    )
    op.create_index(op.f("ix_service_changes_process_id_at"), "service_changes", ["process_id", "at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_service_changes_process_id_at"), table_name="service_changes")
    op.drop_table("service_changes")
