"""The decide agent: ``ui.state`` in, one decision record out per new state.

A thin faust loop around :class:`DecisionEngine`: batch across sessions
(:func:`~selective_autonomy.streams.batches.take_batches`), drop stale and redelivered states using
the session table (read once per session and batch), dead-letter what cannot be decided, call the
models within the worker's deadline (:mod:`~selective_autonomy.agents.model_deadline`), hand a
round's decision records to the agent's producer and wait for the broker's acknowledgements
together, and only then update the session table. The batch's events are acked once the table's
updates are acknowledged too, while the next batch is decided, so a crash or a stop anywhere
re-decides at most the two unacknowledged batches, with the same deterministic ids.

A re-read offset whose bytes differ means the broker's log was rewritten under the worker: the
agent exits for a fresh start (:mod:`~selective_autonomy.agents.log_rewrites`).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import faust
from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode

from selective_autonomy.agents.dead_letters import DeadLetterRouter
from selective_autonomy.agents.decisions import Decision, DecisionEngine
from selective_autonomy.agents.log_rewrites import EXIT_LOG_REWRITTEN, LogFingerprints, exit_for_restart
from selective_autonomy.agents.metrics import BatchClock, RuntimeMetrics
from selective_autonomy.agents.model_deadline import ModelDeadline
from selective_autonomy.agents.session import SessionState, Skip, ends_session
from selective_autonomy.config import KafkaSettings, TopicSettings, WorkerSettings
from selective_autonomy.schemas.events import ActionExecuted, OperatorDeferral, UIStateChanged
from selective_autonomy.streams.agent_producer import AgentProducer
from selective_autonomy.streams.app import raw_topic
from selective_autonomy.streams.batches import take_batches
from selective_autonomy.streams.kafka_config import ProfileTweaks, tweaks_for
from selective_autonomy.streams.serialization import AvroCodec
from selective_autonomy.streams.tables import add_acknowledged_table
from selective_autonomy.streams.tracing import (
    TRACER_NAME,
    consumer_span,
    context_from_headers,
    headers_for,
    messaging_attributes,
)

DecisionHook = Callable[[Decision], None]


def freeze_startup_heap() -> None:
    """Collect, then exempt every object alive now (modules, models, the started app) from later
    collections: a full collection then scans only what was made since.

    Measured in the decide worker (``python -m bench.streaming``): full collections came every few
    seconds and scanned the whole start-up heap, 121-160 ms each, while no batch was decided; they
    were the p99 at 1,000 events/s (``bench/results/streaming_runs/experiments/``). Objects alive
    now that later become unreachable only through a reference cycle are not freed while frozen:
    start-up objects live as long as the agent, the models replaced by a reload are freed by
    reference counting (checked: a loaded policy and critic, and their networks, are gone at ``del``
    with the collector off), and the agent unfreezes the heap when it stops.
    """
    gc.collect()
    gc.freeze()


log = logging.getLogger(__name__)
# One INFO line per decision, with what the session table said (ids and counts only, no field
# values): off unless a deployment or a test sets this logger's level to INFO (the chaos test does).
decisions_log = logging.getLogger(f"{__name__}.decisions")
decisions_log.setLevel(logging.WARNING)


@dataclass
class Emitted:
    """A decision whose record was handed to the producer, waiting for the broker's acknowledgement
    before its session moves on."""

    event: faust.EventT[bytes]
    decision: Decision
    span: Span


class DecideAgent:
    """Holds the agent's collaborators; :meth:`register` adds the faust agent and table."""

    def __init__(
        self,
        kafka: KafkaSettings,
        topics: TopicSettings,
        worker: WorkerSettings,
        engine_provider: Callable[[], DecisionEngine],
        codec: AvroCodec,
        metrics: RuntimeMetrics,
        *,
        ending_actions: Iterable[str] = (),
        on_decision: DecisionHook | None = None,
        tracer_provider: trace.TracerProvider | None = None,
    ) -> None:
        self.kafka = kafka
        self.topics = topics
        self.worker = worker
        self.engine_provider = engine_provider
        self.codec = codec
        self.metrics = metrics
        self.on_decision = on_decision
        self.tracer = trace.get_tracer(TRACER_NAME, tracer_provider=tracer_provider)
        self.table: Any = None  # an AcknowledgedTable once registered
        self.producer: AgentProducer | None = None  # while the agent runs
        self.fingerprints = LogFingerprints()
        self.on_log_rewritten: Callable[[str], None] = exit_for_restart
        # The actions that end a session (``learning.trace_ending_actions``): the screen after one is not decided.
        self.ending_actions = frozenset(ending_actions)
        # The models answer within the deadline, off the event loop where they call a server.
        self.models = ModelDeadline(worker, metrics)

    def register(self, app: faust.App) -> None:
        topics = self.topics
        source = raw_topic(app, topics.ui_state)
        router = DeadLetterRouter(self.codec, raw_topic(app, topics.dead_letter))
        outputs = {
            "executed": topics.actions_executed,
            "deferred": topics.operator_deferrals,
            "proposed": topics.actions_proposed,
        }
        # use_partitioner: changelog records go where the producer's partitioner puts the session
        # key, the same partition as its ui.state records (murmur2 on both sides).
        self.table = add_acknowledged_table(
            app,
            "sessions",
            default=dict,
            key_type=bytes,
            partitions=topics.partitions,
            use_partitioner=True,
        )
        tweaks: ProfileTweaks = getattr(app, "tweaks", None) or tweaks_for(self.kafka)
        # The changelog goes through the agent's producers only where the store keeps no offsets of its
        # own (faust's in-memory store, the default): see AcknowledgedTable.write_through.
        changelog_through_agent = str(app.conf.store).startswith("memory:")

        @app.agent(source, name="decide")
        async def decide(stream: faust.StreamT[bytes]) -> None:
            # Our own acks, not take_events': take_events acks a whole batch in a ``finally`` when
            # its generator is closed, so a batch whose handling was cancelled (SIGTERM, a stop
            # before a rebalance) is acked, and committed by faust's commit on stop, although some
            # of its states were never decided: a graceful restart lost them. take_batches leaves
            # the acks to us. Invariant: an event is acked only after its decision record (or its
            # dead letter) and the session table's update were acknowledged by the broker, or it was
            # skipped as already decided (streams/tables.py: faust's own flush can drop the update).
            linger_ms = self.worker.producer_linger_ms
            self.producer = AgentProducer(self.kafka, linger_ms=linger_ms, name="decide")
            changelog = AgentProducer(self.kafka, linger_ms=linger_ms, name="decide-changelog")
            if changelog_through_agent:
                self.table.write_through(changelog, single_record_tail=tweaks.changelog_single_record_tail)
            # The batch whose table updates are on their way to the broker: it is acked when they are,
            # while the next batch is decided (its sessions read the table's local state, already
            # updated). One at a time: the next batch is not acked before it, nor handed over before
            # it is done, so what is unacknowledged stays within two batches.
            finishing: asyncio.Future[None] | None = None
            if self.worker.freeze_heap:
                freeze_startup_heap()
            try:
                async for batch in take_batches(stream, self.worker.batch_size, self.worker.batch_window_s):
                    clock = BatchClock()
                    handled = await self._handle_batch(batch, router, outputs, clock)
                    if finishing is not None:
                        await finishing  # raises the previous batch's failure, if any
                        finishing = None
                    if handled:
                        finishing = asyncio.ensure_future(self._finish(stream, batch, clock))
                if finishing is not None:
                    await finishing
            finally:
                if finishing is not None and not finishing.done():
                    finishing.cancel()  # its events are not acked: read again after the restart
                self.table.write_through(None)
                if self.worker.freeze_heap:
                    # Collectable again: an app stopped inside a longer-lived process (the demo, the
                    # tests) leaves garbage with cycles that a frozen heap would keep for good.
                    gc.unfreeze()
                for producer in (self.producer, changelog):
                    producer.close(timeout_s=1.0)
                self.producer = None

    async def _finish(self, stream: faust.StreamT[bytes], batch: list[faust.EventT[bytes]], clock: BatchClock) -> None:
        """Ack the batch's events once the table updates that decided them are acknowledged."""
        try:
            waiting = time.perf_counter()
            await self.table.written()
            clock.table_s += time.perf_counter() - waiting
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("session table updates were not acknowledged; stopping the decide agent")
            await stream.crash(exc)
            raise
        for event in batch:
            await stream.ack(event)
        self.metrics.on_batch(
            len(batch), time.perf_counter() - clock.started, clock.models_s, clock.acks_s, clock.table_s
        )

    async def _handle_batch(
        self, batch: list[faust.EventT[bytes]], router: DeadLetterRouter, outputs: dict[str, str], clock: BatchClock
    ) -> bool:
        """Decide the batch; False when it was abandoned (the log changed under the worker)."""
        engine = self.engine_provider()
        # The batch's view of the session table: each session read once, then kept up to date here.
        sessions: dict[str, SessionState] = {}
        fresh: list[tuple[faust.EventT[bytes], UIStateChanged]] = []
        latest_in_batch: dict[str, int] = {}
        self.metrics.on_events(len(batch))
        for event in batch:
            message = event.message
            if self.fingerprints.changed(message.topic, message.partition, message.offset, message.value):
                self.on_log_rewritten(
                    f"{message.topic}[{message.partition}] offset {message.offset} now holds a different record "
                    "than when this worker read it: the broker lost its data (an in-memory broker restarted?). "
                    f"Offsets and session state no longer match the broker; exiting ({EXIT_LOG_REWRITTEN}) "
                    "so that a fresh worker starts from what the broker has now."
                )
                return False
            state = await router.decode(event, UIStateChanged)
            if state is None:
                self.metrics.on_dead_letter(event.message.topic)
                continue
            reason = self._reject_reason(state, engine)
            if reason is not None:
                await router.reject(event, reason)
                self.metrics.on_dead_letter(event.message.topic)
                continue
            session = sessions.get(state.session_id)
            if session is None:
                session = sessions[state.session_id] = self._read_session(state.session_id)
            skip = session.skip_reason(state)
            seen = latest_in_batch.get(state.session_id)
            if skip is None and seen is not None and state.state_version <= seen:
                skip = Skip.duplicate if state.state_version == seen else Skip.stale
            if skip is None and ends_session(state, self.ending_actions):
                skip = Skip.ended
            if skip is not None:
                self.metrics.on_skip(skip.value)
                continue
            latest_in_batch[state.session_id] = state.state_version
            fresh.append((event, state))
        # A session's later states in this batch are decided in a later round, once its earlier
        # ones are in the session table: the gate counts the session's unattended steps, and a
        # decision must not depend on how a session's states happened to be batched (a redelivery
        # after a crash batches them differently and must decide the same).
        rounds: list[list[tuple[faust.EventT[bytes], UIStateChanged]]] = []
        occurrences: dict[str, int] = {}
        for item in fresh:
            index = occurrences.get(item[1].session_id, 0)
            occurrences[item[1].session_id] = index + 1
            if index == len(rounds):
                rounds.append([])
            rounds[index].append(item)
        for items in rounds:
            await self._decide_round(engine, items, sessions, outputs, clock)
        return True

    async def _decide_round(
        self,
        engine: DecisionEngine,
        fresh: list[tuple[faust.EventT[bytes], UIStateChanged]],
        sessions: dict[str, SessionState],
        outputs: dict[str, str],
        clock: BatchClock,
    ) -> None:
        """Decide states of distinct sessions in one engine call, send every decision record, wait
        for their acknowledgements together, then move the sessions on in the table."""
        progress = {state.session_id: sessions[state.session_id].progress for _, state in fresh}
        decisions = await self.models.decide(engine, [state for _, state in fresh], progress, clock)
        emitted = [
            self._send(event, decision, sessions, outputs)
            for (event, _), decision in zip(fresh, decisions, strict=True)
        ]
        try:
            # The broker's ack of every decision record before the session table moves on: at-least-once.
            waiting = time.perf_counter()
            await self._running_producer().delivered()
            clock.acks_s += time.perf_counter() - waiting
            self.metrics.on_decisions([self._moved_on(item, sessions) for item in emitted])
        except BaseException as exc:
            for item in emitted:
                item.span.record_exception(exc)
                item.span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
            raise
        finally:
            for item in emitted:
                item.span.end()

    @property
    def model_call_overdue(self) -> bool:
        """A model call missed its deadline and still runs: until it ends, states are deferred at once."""
        return self.models.overdue

    def _reject_reason(self, state: UIStateChanged, engine: DecisionEngine) -> str | None:
        if not engine.knows(state.process_id):
            return f"unknown process {state.process_id!r}"
        return None

    def _running_producer(self) -> AgentProducer:
        if self.producer is None:
            raise RuntimeError("the decide agent's producer is used before the agent started or after it stopped")
        return self.producer

    def _read_session(self, session_id: str) -> SessionState:
        return SessionState.model_validate(self.table[session_id.encode()] or {})

    def _send(
        self,
        event: faust.EventT[bytes],
        decision: Decision,
        sessions: Mapping[str, SessionState],
        outputs: dict[str, str],
    ) -> Emitted:
        """Hand the decision's record to the producer (not waiting for it), within the span that
        carries the trace context on to the record."""
        message = event.message
        span = consumer_span(
            self.tracer,
            f"{message.topic} process",
            context_from_headers(message.headers),
            messaging_attributes(message.topic, "process", message.key, message.partition, message.offset),
        )
        state = decision.event
        span.set_attribute("selauto.outcome", decision.outcome.value)
        span.set_attribute("selauto.session_id", state.session_id)
        span.set_attribute("selauto.state_version", state.state_version)
        if decision.gate.reason is not None:
            span.set_attribute("selauto.deferral_reason", decision.gate.reason.value)
        record = decision.output()
        if record is not None and not sessions[state.session_id].already_executed(decision.action_id):
            topic = outputs[self._output_kind(record)]
            self._running_producer().send(
                topic, self.codec.encode(record, topic), key=message.key, headers=headers_for(span)
            )
        return Emitted(event, decision, span)

    def _moved_on(self, item: Emitted, sessions: dict[str, SessionState]) -> tuple[str, str | None, float, str]:
        """The session after its decision's record was acknowledged: in this batch's view and in the
        table (one changelog record per state, acknowledged before the batch is acked). Returns what
        the metrics record of the decision (outcome, deferral reason, latency ms, process)."""
        decision = item.decision
        state = decision.event
        if decisions_log.isEnabledFor(logging.INFO):
            before = sessions[state.session_id]
            message = item.event.message
            decisions_log.info(
                "decided %s v%d: %s; the session table had v%d and %d unattended steps; from %s[%d]@%d",
                state.session_id,
                state.state_version,
                decision.outcome.value,
                before.last_state_version,
                before.autonomous_steps,
                message.topic,
                message.partition,
                message.offset,
            )
        session = sessions[state.session_id] = sessions[state.session_id].after(
            state, decision.outcome, decision.action_id, decision.deferral_id
        )
        self.table[state.session_id.encode()] = session.model_dump()
        if self.on_decision is not None:
            self.on_decision(decision)
        latency_ms = (time.time() - state.timestamp.timestamp()) * 1000.0
        reason = decision.gate.reason.value if decision.gate.reason else None
        return decision.outcome.value, reason, latency_ms, state.process_id

    @staticmethod
    def _output_kind(record: object) -> str:
        if isinstance(record, ActionExecuted):
            return "executed"
        if isinstance(record, OperatorDeferral):
            return "deferred"
        return "proposed"
