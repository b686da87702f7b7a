"""Hand controls: ``confirm``, a supervisor's confirmation of a promotion to selective the learning
loop proposed (``learning.promotion = confirmed``), joins the controls ``hand_controls`` accepts.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-12
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = "ck_hand_controls_control"
BEFORE = "control IN ('stage', 'release', 'pause', 'resume')"
AFTER = "control IN ('stage', 'release', 'pause', 'resume', 'confirm')"


def _replace_check(condition: str) -> None:
    # SQLite cannot alter a constraint: batch mode copies the table with the new one. The name is
    # given whole (op.f): the naming convention must not prefix it a second time.
    with op.batch_alter_table("hand_controls") as batch:
        batch.drop_constraint(op.f(NAME), type_="check")
        batch.create_check_constraint(op.f(NAME), condition)


def upgrade() -> None:
    _replace_check(AFTER)


def downgrade() -> None:
    # Confirmations recorded since cannot be kept under the old constraint.
    op.execute("DELETE FROM hand_controls WHERE control = 'confirm'")
    _replace_check(BEFORE)
