"""Runtime metrics: OpenTelemetry instruments plus plain counters the health and status
endpoints read (so the numbers are visible without a metrics backend).

The instruments record into the meter provider given (``selauto worker`` passes the one built from
the telemetry settings, :mod:`selective_autonomy.streams.meters`, exported over OTLP and on
``/metrics``), else the global one.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from opentelemetry import metrics

from selective_autonomy.schemas.events import CopilotFeedback
from selective_autonomy.streams.lag import PartitionLag


@dataclass
class RuntimeMetrics:
    events: int = 0
    dead_letters: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    deferral_reasons: Counter[str] = field(default_factory=Counter)
    feedback: Counter[str] = field(default_factory=Counter)
    consumer_lag: list[PartitionLag] = field(default_factory=list)
    model_timeouts: int = 0
    """States deferred because the models missed their deadline."""
    consumer_lag_note: str | None = None
    """Why no lag is shown (not read on this broker profile, or the last read failed)."""
    batch_timing: BatchTiming = field(default_factory=lambda: BatchTiming())
    """Where the decide agent's batches spend their time (models, waiting for the broker, the rest)."""
    meter_provider: metrics.MeterProvider | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        meter = metrics.get_meter("selective_autonomy", meter_provider=self.meter_provider)
        self._events = meter.create_counter("selauto.events", description="ui.state records consumed")
        self._decisions = meter.create_counter("selauto.decisions", description="decisions by outcome")
        self._deferrals = meter.create_counter("selauto.deferrals", description="deferrals by reason")
        self._dead = meter.create_counter("selauto.dead_letters", description="records sent to the dead-letter topic")
        self._model_timeouts = meter.create_counter(
            "selauto.model_timeouts", description="states deferred because the models missed their deadline"
        )
        self._latency = meter.create_histogram(
            "selauto.decision.latency", unit="ms", description="ui.state produced to decision produced"
        )
        self._automation = meter.create_observable_gauge(
            "selauto.automation_rate",
            callbacks=[lambda _options: [metrics.Observation(self.automation_rate)]],
            description="share of decided steps executed unattended",
        )
        self._lag = meter.create_observable_gauge(
            "selauto.consumer.lag",
            callbacks=[lambda _options: self._lag_observations()],
            unit="{record}",
            description="records on the broker the worker's consumer group has not committed, per partition",
        )
        self._audits = meter.create_counter(
            "selauto.audits", description="audits of steps executed unattended, by verdict"
        )
        # Audits sample executed steps with a known probability; weighting each by its inverse is
        # what makes the share not corrected an unbiased estimate of the precision realised (the
        # learning loop's monitor weighs them the same way).
        self._audit_weight = meter.create_counter(
            "selauto.audits.weighted",
            description="audits weighted by the inverse of their sampling probability: the realised precision is "
            "the share of it not corrected",
        )
        self._batch_size = meter.create_histogram(
            "selauto.decide.batch.size", unit="{record}", description="ui.state records per batch the decide agent took"
        )
        self._batch_duration = meter.create_histogram(
            "selauto.decide.batch.duration",
            unit="ms",
            description="time the decide agent spent on a batch, by part: total (taken to acked), models (the "
            "policy and critic call), acks (the broker acknowledging its decision records), table (then its "
            "session table updates)",
        )
        self._demotions = meter.create_counter(
            "selauto.stage.demotions",
            description="clusters moved to a lower stage (learning loop, monitor alarm or by hand), as this worker "
            "loaded the pointer",
        )

    def on_event(self) -> None:
        self.on_events(1)

    def on_events(self, count: int) -> None:
        """``count`` ui.state records consumed (one counter add for a whole batch)."""
        self.events += count
        self._events.add(count)

    def on_dead_letter(self, topic: str) -> None:
        self.dead_letters += 1
        self._dead.add(1, {"topic": topic})

    def on_model_timeout(self, states: int) -> None:
        self.model_timeouts += states
        self._model_timeouts.add(states)

    def on_batch(self, events: int, total_s: float, models_s: float, acks_s: float, table_s: float = 0.0) -> None:
        """One batch done: its size, its wall time from taken to acked, and the parts of it spent in
        the models, waiting for the broker to acknowledge its decision records, then its session
        table updates (the last two while the next batch is decided)."""
        self.batch_timing.add(events, total_s, models_s, acks_s, table_s)
        self._batch_size.record(events)
        self._batch_duration.record(total_s * 1000.0, {"part": "total"})
        self._batch_duration.record(models_s * 1000.0, {"part": "models"})
        self._batch_duration.record(acks_s * 1000.0, {"part": "acks"})
        self._batch_duration.record(table_s * 1000.0, {"part": "table"})

    def on_skip(self, reason: str) -> None:
        self.skipped[reason] += 1

    def on_decision(self, outcome: str, reason: str | None, latency_ms: float, process_id: str) -> None:
        self.on_decisions([(outcome, reason, latency_ms, process_id)])

    def on_decisions(self, decisions: Sequence[tuple[str, str | None, float, str]]) -> None:
        """Decisions as (outcome, deferral reason or None, latency ms, process id): the same counts as
        :meth:`on_decision` for each, with one counter add per outcome (or reason) and process, since
        the SDK's adds cost microseconds each and the decide agent records a batch at a time."""
        outcomes: Counter[tuple[str, str]] = Counter()
        reasons: Counter[tuple[str, str]] = Counter()
        for outcome, reason, latency_ms, process_id in decisions:
            outcomes[outcome, process_id] += 1
            if reason is not None:
                reasons[reason, process_id] += 1
            self._latency.record(latency_ms, {"outcome": outcome})
        for (outcome, process_id), count in outcomes.items():
            self.outcomes[outcome] += count
            self._decisions.add(count, {"outcome": outcome, "process": process_id})
        for (reason, process_id), count in reasons.items():
            self.deferral_reasons[reason] += count
            self._deferrals.add(count, {"reason": reason, "process": process_id})

    def on_feedback(self, feedback: CopilotFeedback) -> None:
        self.feedback[feedback.verdict.value] += 1
        if feedback.is_audit:
            attributes = {
                "process": feedback.process_id,
                "cluster": feedback.business_cluster,
                "verdict": feedback.verdict.value,
            }
            self._audits.add(1, attributes)
            self._audit_weight.add(1.0 / (feedback.inclusion_probability or 1.0), attributes)

    def on_stages(self, process_id: str, clusters: Iterable[str], demoted: Iterable[str]) -> None:
        """The stages of ``process_id`` as just loaded (:class:`ModelsInService`): its ``clusters``
        (each series starts at zero, so an alert on its increase sees the first demotion too) and
        those ``demoted`` from the pointer in service before."""
        for cluster in clusters:
            self._demotions.add(0, {"process": process_id, "cluster": cluster})
        for cluster in demoted:
            self._demotions.add(1, {"process": process_id, "cluster": cluster})

    def on_consumer_lag(self, partitions: list[PartitionLag] | None, note: str | None = None) -> None:
        """The latest lag reading; None keeps the previous one (a failed read) and says why."""
        if partitions is not None:
            self.consumer_lag = partitions
        self.consumer_lag_note = note

    def _lag_observations(self) -> list[metrics.Observation]:
        return [
            metrics.Observation(
                p.lag, {"messaging.destination.name": p.topic, "messaging.destination.partition.id": str(p.partition)}
            )
            for p in self.consumer_lag
        ]

    @property
    def automation_rate(self) -> float:
        decided = self.outcomes["execute"] + self.outcomes["defer"]
        return self.outcomes["execute"] / decided if decided else 0.0

    def snapshot(self) -> dict[str, object]:
        return {
            "events": self.events,
            "dead_letters": self.dead_letters,
            "model_timeouts": self.model_timeouts,
            "skipped": dict(self.skipped),
            "outcomes": dict(self.outcomes),
            "deferral_reasons": dict(self.deferral_reasons),
            "feedback": dict(self.feedback),
            "automation_rate": round(self.automation_rate, 4),
            "consumer_lag": {f"{p.topic}[{p.partition}]": p.lag for p in self.consumer_lag},
            "consumer_lag_note": self.consumer_lag_note,
            "batches": self.batch_timing.snapshot(),
        }


@dataclass
class BatchClock:
    """Where one batch's time went: the models' call, waiting for the broker to acknowledge its
    decision records, then its session table updates (the latter while the next batch is decided)."""

    started: float = field(default_factory=time.perf_counter)
    models_s: float = 0.0
    acks_s: float = 0.0
    table_s: float = 0.0


@dataclass
class BatchTiming:
    """Sums over the decide agent's batches; the means are what ``/healthz`` shows."""

    batches: int = 0
    events: int = 0
    total_s: float = 0.0
    models_s: float = 0.0
    acks_s: float = 0.0
    table_s: float = 0.0
    sizes: Counter[int] = field(default_factory=Counter)
    """Batches by size, rounded down to a multiple of 8."""

    def add(self, events: int, total_s: float, models_s: float, acks_s: float, table_s: float = 0.0) -> None:
        self.batches += 1
        self.events += events
        self.total_s += total_s
        self.models_s += models_s
        self.acks_s += acks_s
        self.table_s += table_s
        self.sizes[events // 8 * 8] += 1

    def snapshot(self) -> dict[str, object]:
        batches = max(1, self.batches)
        return {
            "batches": self.batches,
            "events": self.events,
            "mean_size": round(self.events / batches, 2),
            "mean_ms": round(self.total_s / batches * 1000.0, 3),
            "mean_models_ms": round(self.models_s / batches * 1000.0, 3),
            "mean_acks_ms": round(self.acks_s / batches * 1000.0, 3),
            "mean_table_ms": round(self.table_s / batches * 1000.0, 3),
            "total_s": round(self.total_s, 3),
            "models_s": round(self.models_s, 3),
            "acks_s": round(self.acks_s, 3),
            "table_s": round(self.table_s, 3),
            "sizes_by_8": dict(sorted(self.sizes.items())),
        }
