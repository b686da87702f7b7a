"""Who gets labelled whatever the critic says: the exploration holdout of sessions and the audit
sample of unattended steps.

Both draws are fixed by ids alone (a salted SHA-256), so every worker, console replica and replay
picks the same sessions and steps, a redelivery picks the same again, and the probability of being
picked is known exactly: it is what makes the labels they produce unbiased evidence about the steps
the gate executes (see docs/guarantee.md).

Audits are a systematic sample (:class:`SystematicSample`), not independent draws: at 4%,
independent draws give a binomial count, and on the 145-300 executed steps of a small log the audit
share exceeded 5% of executed steps in 15-23% of runs (measured: 5.5-5.9% on SGD and ABCD in
bench/results/guarantee.json of 2026-12-03). A systematic sample audits n * rate of n steps,
rounded, with the same inclusion probability for every step.
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict

_HOLDOUT_SALT = "holdout\x1f"
_AUDIT_SALT = "audit\x1f"


def _draw(salt: str, key: str) -> float:
    """A number in [0, 1) fixed by ``key``: the first 8 hex digits of a salted SHA-256."""
    return int(hashlib.sha256((salt + key).encode()).hexdigest()[:8], 16) / 2**32


def audit_start(scope: str) -> float:
    """The systematic audit sample's random start in ``scope``, in [0, 1)."""
    return _draw(_AUDIT_SALT, scope)


def systematic_pick(start: float, position: int, rate: float) -> bool:
    """Whether the item at ``position`` (0, 1, ...) of a scope is in the systematic sample at ``rate``
    that starts at ``start``: when ``start + position * rate`` crosses an integer at this item.

    For a start uniform in [0, 1) every position is picked with probability ``rate`` exactly (the
    fractional part of ``start + position * rate`` is uniform), and the first ``n`` positions hold
    ``floor(start + n * rate)`` picks: ``n * rate`` rounded down or up, never a binomial count.
    """
    if rate <= 0.0:
        return False
    if rate >= 1.0:
        return True
    return math.floor(start + (position + 1) * rate) > math.floor(start + position * rate)


class SystematicSample:
    """The audit sample: every ``1 / rate``-th distinct item of each scope, from a start fixed by
    the scope's name, so every reader of the same items in the same order picks the same ones.

    A scope is a sequence every reader sees in one order: a partition of ``actions.executed`` in the
    console (each replica reads every partition from its beginning), a process in the simulator.
    An item seen again (a redelivered record, a re-read partition) keeps its first answer and does
    not advance the scope's position; the last ``memory`` items are remembered. Not thread-safe: the
    caller holds its own lock.
    """

    def __init__(self, rate: float, memory: int = 100_000) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"rate must be in [0, 1], got {rate}")
        self.rate = rate
        self.memory = memory
        self._positions: dict[str, int] = {}
        self._answers: OrderedDict[str, bool] = OrderedDict()

    def picks(self, scope: str, item_id: str) -> bool:
        """Whether ``item_id``, the next item of ``scope``, is in the sample."""
        known = self._answers.get(item_id)
        if known is not None:
            return known
        position = self._positions.get(scope, 0)
        self._positions[scope] = position + 1
        picked = systematic_pick(audit_start(scope), position, self.rate)
        self._answers[item_id] = picked
        while len(self._answers) > self.memory:
            self._answers.popitem(last=False)
        return picked


def in_exploration_holdout(session_id: str, share: float) -> bool:
    """Whether ``session_id`` stays in copilot while its cluster is selective (``share`` of sessions)."""
    return share > 0.0 and _draw(_HOLDOUT_SALT, session_id) < share
