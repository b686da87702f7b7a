"""The migration scripts themselves, without a database: one chain, one head, file names that say
the revision (branches merged side by side each bring a migration numbered after the same parent)."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

from alembic.script import ScriptDirectory

from selective_autonomy.store.migration import alembic_config, head_revision


def test_the_migrations_form_one_chain_with_one_head() -> None:
    script = ScriptDirectory.from_config(alembic_config())
    assert script.get_heads() == [head_revision()]
    chain = list(reversed(list(script.walk_revisions())))  # oldest first
    assert chain[0].down_revision is None
    for parent, child in pairwise(chain):
        assert child.down_revision == parent.revision, f"{child.revision} does not follow {parent.revision}"
    revisions = [r.revision for r in chain]
    assert revisions == [f"{n:04d}" for n in range(1, len(chain) + 1)]
    for migration in chain:
        assert Path(migration.path).name.startswith(f"{migration.revision}_"), migration.path
