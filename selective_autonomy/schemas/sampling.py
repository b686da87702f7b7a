"""Who gets labelled whatever the critic says: the exploration holdout of sessions and the audit
sample of unattended steps.

Both draws are fixed by an id alone (a salted SHA-256), so every worker, console replica and replay
picks the same sessions and steps, a redelivery picks the same again, and the probability of being
picked is known exactly: it is what makes the labels they produce unbiased evidence about the steps
the gate executes (see docs/guarantee.md).
"""

from __future__ import annotations

import hashlib

_HOLDOUT_SALT = "holdout\x1f"
_AUDIT_SALT = "audit\x1f"


def _draw(salt: str, key: str) -> float:
    """A number in [0, 1) fixed by ``key``: the first 8 hex digits of a salted SHA-256."""
    return int(hashlib.sha256((salt + key).encode()).hexdigest()[:8], 16) / 2**32


def audit_draw(action_id: str) -> float:
    return _draw(_AUDIT_SALT, action_id)


def audit_sampled(action_id: str, rate: float) -> bool:
    """Whether the executed step ``action_id`` is offered for audit at ``rate`` (0: never, 1: always)."""
    return rate > 0.0 and audit_draw(action_id) < rate


def in_exploration_holdout(session_id: str, share: float) -> bool:
    """Whether ``session_id`` stays in copilot while its cluster is selective (``share`` of sessions)."""
    return share > 0.0 and _draw(_HOLDOUT_SALT, session_id) < share
