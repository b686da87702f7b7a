"""The console's metrics: what waits for an operator, read from the inbox and the audit book at
each collection (observable gauges, so nothing is counted twice and no answer path records).

Every console replica reads the whole deferral topic, so each reports the same numbers: aggregate
replicas with ``max``, not ``sum``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from opentelemetry import metrics

from selective_autonomy.console.audits import AuditBook
from selective_autonomy.console.inbox import Inbox


class ConsoleMeters:
    """Registers the console's instruments on ``meter_provider`` (default: the global one)."""

    def __init__(self, inbox: Inbox, audits: AuditBook, meter_provider: metrics.MeterProvider | None = None) -> None:
        self.inbox = inbox
        self.audits = audits
        meter = metrics.get_meter("selective_autonomy", meter_provider=meter_provider)
        meter.create_observable_gauge(
            "selauto.console.deferrals.waiting",
            callbacks=[lambda _options: self._waiting()],
            unit="{deferral}",
            description="deferred steps waiting for an operator, per process",
        )
        meter.create_observable_gauge(
            "selauto.console.deferrals.oldest_wait",
            callbacks=[lambda _options: self._oldest_wait()],
            unit="s",
            description="how long the session waiting longest has waited for an operator, per process",
        )
        meter.create_observable_gauge(
            "selauto.console.audits.pending",
            callbacks=[lambda _options: self._audits_pending()],
            unit="{audit}",
            description="unattended steps offered to operators for audit and not judged yet, per process",
        )

    def _known(self, *more: Iterable[str]) -> set[str]:
        # Processes seen lately stay at 0 rather than vanish when their inbox empties: a gap in a
        # series reads as "no data", not as "nothing waits".
        known = set(self.inbox.processes())
        for names in more:
            known.update(names)
        return known

    def _waiting(self) -> list[metrics.Observation]:
        counts = Counter(card.process_id for card in self.inbox.cards())
        return [metrics.Observation(counts[p], {"process": p}) for p in sorted(self._known(counts))]

    def _oldest_wait(self) -> list[metrics.Observation]:
        now = self.inbox.clock()
        oldest: dict[str, float] = {}
        for card in self.inbox.cards():  # the session waiting longest first
            oldest.setdefault(card.process_id, card.waiting_since)
        return [
            metrics.Observation(max(0.0, now - oldest[p]) if p in oldest else 0.0, {"process": p})
            for p in sorted(self._known(oldest))
        ]

    def _audits_pending(self) -> list[metrics.Observation]:
        counts = Counter(audit.process_id for audit in self.audits.pending())
        return [metrics.Observation(counts[p], {"process": p}) for p in sorted(self._known(counts))]
