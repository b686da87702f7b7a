"""`selauto executor`: a consumer group on ``actions.executed`` that applies each action and commits
only what it finished.

One poll takes up to ``executor.poll_batch`` records. They are grouped by session key: sessions run
concurrently (at most ``executor.max_in_flight``), one session's actions strictly in order. Failure
records and dead letters are acknowledged by the broker before the batch's offsets are committed;
if anything in a batch raises (the store or the broker away), nothing is committed, the consumer
seeks back to the batch's first offsets and tries again after a pause. Redelivery is harmless: the
ledger turns it into ``duplicate``.

Between two polls nothing is in flight, so a rebalance (served inside the poll) never revokes a
partition with work pending; ``max.poll.interval.ms`` is sized to the retry budget of a full batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, Message, TopicPartition
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from opentelemetry import metrics, trace
from opentelemetry.trace import SpanKind

from selective_autonomy.config import Settings
from selective_autonomy.edges.executor.adapter_choice import adapter_for
from selective_autonomy.edges.executor.adapters import ActionAdapter
from selective_autonomy.edges.executor.failures import action_failed, failure_deferral
from selective_autonomy.edges.executor.ledger import Ledger, StoreLedger
from selective_autonomy.edges.executor.meters import register_executor_meters
from selective_autonomy.edges.executor.retry import Backoff
from selective_autonomy.edges.executor.service import ActionExecutor, Execution
from selective_autonomy.edges.publisher import AckingProducer
from selective_autonomy.edges.records import KafkaPublisher, Outgoing, RecordPublisher, publish_all
from selective_autonomy.errors import DecodeError
from selective_autonomy.schemas.events import ActionExecuted, EventModel
from selective_autonomy.store import FeedbackStore
from selective_autonomy.streams.dead_letter import dead_letter_for
from selective_autonomy.streams.kafka_config import confluent_config
from selective_autonomy.streams.prometheus import MetricsExposition, add_metrics_route
from selective_autonomy.streams.serialization import AvroCodec, codec_for
from selective_autonomy.streams.tracing import TRACER_NAME, context_from_headers, headers_for, messaging_attributes

log = logging.getLogger(__name__)

RETRY_PAUSE_S = (0.5, 1.0, 2.0, 5.0, 10.0)
"""Pauses after consecutive failed batches."""


@dataclass
class RunnerState:
    batches: int = 0
    records: int = 0
    dead_letters: int = 0
    failed_batches: int = 0
    commit_failures: int = 0
    assigned: list[str] = field(default_factory=list)
    last_error: str | None = None
    started_at: float = field(default_factory=time.time)
    first_batch_at: float | None = None  # monotonic: when the first records arrived
    last_batch_at: float | None = None  # monotonic: when the last batch was committed


def _headers(message: Message) -> list[tuple[str, bytes]]:
    found: Any = message.headers() or []
    raw: list[tuple[str, Any]] = list(found.items() if isinstance(found, dict) else found)
    return [(k, v if isinstance(v, bytes) else str(v or "").encode()) for k, v in raw]


def _session_key(message: Message, event: ActionExecuted) -> str:
    key = message.key()
    return key.decode("utf-8", "replace") if key else event.session_id


class ExecutorRunner:
    """The consumer loop around an :class:`ActionExecutor`.

    :param settings: topics, Kafka settings and the ``executor`` section.
    :param executor: applies one action.
    :param publisher: where failure records and dead letters go.
    :param tracer_provider: for the per-action spans; default the global provider.
    :param consumer_overrides: more librdkafka consumer properties (they win).
    """

    def __init__(
        self,
        settings: Settings,
        executor: ActionExecutor,
        publisher: RecordPublisher,
        *,
        tracer_provider: trace.TracerProvider | None = None,
        codec: AvroCodec | None = None,
        **consumer_overrides: Any,
    ) -> None:
        self.settings = settings
        self.config = settings.executor
        self.topics = settings.topics
        self.executor = executor
        self.publisher = publisher
        self.codec = codec or codec_for(settings)
        self.tracer = (tracer_provider or trace.get_tracer_provider()).get_tracer(TRACER_NAME)
        self.state = RunnerState()
        self.consumer_overrides = consumer_overrides
        self._semaphore = asyncio.Semaphore(self.config.max_in_flight)

    # -- kafka ---------------------------------------------------------------------------------

    def _consumer(self) -> Consumer:
        budget_ms = int(self.config.poll_batch * self.config.retry.budget_s * 1000)
        conf = confluent_config(
            self.settings.kafka,
            "consumer",
            **{
                "group.id": self.config.group(self.settings.app_id),
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest",
                "enable.partition.eof": False,
                "max.poll.interval.ms": min(86_400_000, max(300_000, budget_ms + 60_000)),
                **self.consumer_overrides,
            },
        )
        return Consumer(conf)

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.state.assigned = sorted({*self.state.assigned, *(f"{p.topic}:{p.partition}" for p in partitions)})

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        gone = {f"{p.topic}:{p.partition}" for p in partitions}
        self.state.assigned = [p for p in self.state.assigned if p not in gone]

    @staticmethod
    def _positions(messages: Sequence[Message], first: bool) -> list[TopicPartition]:
        """Per partition, the first offset of the batch (to rewind to) or the one after its last (to commit)."""
        chosen: dict[tuple[str, int], int] = {}
        for message in messages:
            where = (message.topic() or "", message.partition() or 0)
            offset = message.offset() or 0
            if where not in chosen:
                chosen[where] = offset
            else:
                chosen[where] = min(chosen[where], offset) if first else max(chosen[where], offset)
        return [TopicPartition(t, p, o if first else o + 1) for (t, p), o in chosen.items()]

    # -- processing ----------------------------------------------------------------------------

    async def process(self, messages: Sequence[Message]) -> list[Execution]:
        """Apply a batch of records: decode, dead-letter the undecodable, run sessions concurrently."""
        sessions: dict[str, list[tuple[Message, ActionExecuted]]] = {}
        letters: list[Outgoing] = []
        for message in messages:
            try:
                event = self.codec.decode(message.value(), ActionExecuted)
            except DecodeError as exc:
                record = dead_letter_for(
                    message.value(),
                    message.key(),
                    message.topic() or "",
                    message.partition() or 0,
                    message.offset() or 0,
                    exc,
                )
                key = (message.key() or b"").decode("utf-8", "replace")
                letters.append(Outgoing(self.topics.dead_letter, key, record))
                continue
            sessions.setdefault(_session_key(message, event), []).append((message, event))
        # Every session runs to its end before anything is raised: a retried batch must never
        # overlap a session still in flight (it would find that session's claims unsettled).
        results = await asyncio.gather(*(self._session(items) for items in sessions.values()), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise errors[0]
        if letters:
            await publish_all(self.publisher, letters)
            self.state.dead_letters += len(letters)
        return [execution for per_session in results if isinstance(per_session, list) for execution in per_session]

    async def _session(self, items: list[tuple[Message, ActionExecuted]]) -> list[Execution]:
        out = []
        async with self._semaphore:
            for message, event in items:
                out.append(await self._one(message, event))
        return out

    async def _one(self, message: Message, event: ActionExecuted) -> Execution:
        topic = message.topic() or self.topics.actions_executed
        with self.tracer.start_as_current_span(
            f"{topic} process",
            context=context_from_headers(_headers(message)),
            kind=SpanKind.CONSUMER,
            attributes=messaging_attributes(topic, "process", message.key(), message.partition(), message.offset()),
        ) as span:
            span.set_attribute("selauto.session_id", event.session_id)
            span.set_attribute("selauto.action_id", event.action_id)
            span.set_attribute("selauto.action_type", event.action.action_type)
            execution = await self.executor.execute(event)
            span.set_attribute("selauto.execution", execution.status.value)
            span.set_attribute("selauto.attempts", execution.attempts)
            if execution.needs_operator:
                log.warning(
                    "executor: %s %s for session %s: %s",
                    event.action.action_type,
                    execution.status.value,
                    event.session_id,
                    execution.error,
                )
                headers = headers_for(span)
                failure: list[tuple[str, EventModel]] = [
                    (self.topics.actions_failed, action_failed(execution)),
                    (self.topics.operator_deferrals, failure_deferral(execution)),
                ]
                await publish_all(self.publisher, [Outgoing(t, event.session_id, e, headers) for t, e in failure])
                await self.executor.settle(execution)
        return execution

    # -- the loop ------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set; the consumer leaves its group cleanly on the way out."""
        consumer = self._consumer()
        consumer.subscribe([self.topics.actions_executed], on_assign=self._on_assign, on_revoke=self._on_revoke)
        failures = 0
        try:
            while not stop.is_set():
                messages = await asyncio.to_thread(consumer.consume, self.config.poll_batch, 0.2)
                records = []
                for message in messages:
                    error = message.error()
                    if error is not None:
                        log.warning("executor: consume error: %s", error)
                        continue
                    records.append(message)
                if not records:
                    continue
                if self.state.first_batch_at is None:
                    self.state.first_batch_at = time.monotonic()
                try:
                    await self.process(records)
                except Exception as exc:
                    self.state.failed_batches += 1
                    self.state.last_error = f"{type(exc).__name__}: {exc}"
                    pause = RETRY_PAUSE_S[min(failures, len(RETRY_PAUSE_S) - 1)]
                    failures += 1
                    log.exception("executor: batch failed, retrying it in %.1f s", pause)
                    for position in self._positions(records, first=True):
                        with contextlib.suppress(Exception):  # revoked meanwhile: the new owner redelivers
                            consumer.seek(position)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), pause)
                    continue
                failures = 0
                self.state.batches += 1
                self.state.records += len(records)
                try:
                    await asyncio.to_thread(
                        consumer.commit, offsets=self._positions(records, first=False), asynchronous=False
                    )
                except Exception as exc:  # a rebalance took the partition: its next owner skips the duplicates
                    self.state.commit_failures += 1
                    log.warning("executor: commit failed: %s", exc)
                self.state.last_batch_at = time.monotonic()
        finally:
            await asyncio.to_thread(consumer.close)

    def health(self) -> dict[str, Any]:
        metrics = self.executor.metrics
        return {
            "status": "ok",
            "adapter": self.executor.adapter.name,
            "assigned": self.state.assigned,
            "batches": self.state.batches,
            "records": self.state.records,
            "applied": metrics.applied,
            "failed": metrics.failed,
            "unknown": metrics.unknown,
            "duplicates": metrics.duplicates,
            "attempts": metrics.attempts,
            "retries": metrics.retries,
            "dead_letters": self.state.dead_letters,
            "failed_batches": self.state.failed_batches,
            "commit_failures": self.state.commit_failures,
            "last_error": self.state.last_error,
        }


def health_app(runner: ExecutorRunner, exposition: MetricsExposition | None = None) -> FastAPI:
    """``/healthz`` (alive, with counters), ``/readyz`` (503 until partitions are assigned) and, with
    an ``exposition``, ``/metrics`` (Prometheus text)."""
    app = FastAPI(title="selective-autonomy executor", docs_url=None, redoc_url=None, openapi_url=None)
    if exposition is not None:
        add_metrics_route(app, exposition)

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return runner.health()

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        ready = bool(runner.state.assigned)
        return JSONResponse({"ready": ready, "assigned": runner.state.assigned}, status_code=200 if ready else 503)

    return app


def store_url(settings: Settings) -> str:
    """The feedback store every process of a deployment shares (as ``agents.worker.store_url``)."""
    return settings.store.resolved_url(settings.data_dir)


def build_adapter(settings: Settings) -> ActionAdapter:
    """The adapter named by ``executor.adapter``; raises ConfigError when it is not usable."""
    return adapter_for(settings.executor)


@dataclass
class RunningExecutor:
    runner: ExecutorRunner
    health_port: int | None = None


async def run_executor(
    settings: Settings,
    stop: asyncio.Event,
    *,
    adapter: ActionAdapter | None = None,
    ledger: Ledger | None = None,
    health: bool = True,
    tracer_provider: trace.TracerProvider | None = None,
    meter_provider: metrics.MeterProvider | None = None,
    exposition: MetricsExposition | None = None,
    on_start: Callable[[RunningExecutor], None] | None = None,
    **consumer_overrides: Any,
) -> ExecutorRunner:
    """Run the executor until ``stop`` is set; returns the runner (its counters) when it stopped.

    :param adapter: default the one configured (:func:`build_adapter`).
    :param ledger: default the feedback store at :func:`store_url`.
    :param health: serve ``/healthz`` and ``/readyz`` on ``executor.health_host:health_port``.
    :param meter_provider: for the executor's counters; default the global provider.
    :param exposition: the Prometheus text of ``meter_provider``, served on ``/metrics`` with the
        health endpoints; default none.
    :param on_start: called once the runner (and the health server) are up.
    """
    adapter = adapter or build_adapter(settings)
    store: FeedbackStore | None = None
    if ledger is None:
        store = await asyncio.to_thread(FeedbackStore.open, settings.store.resolved_url(settings.data_dir))
        ledger = StoreLedger(store)
    codec = await asyncio.to_thread(codec_for, settings)  # a registry, when configured, answers first
    producer = AckingProducer(settings, timeout_s=settings.executor.publish_timeout_s, codec=codec)
    publisher = KafkaPublisher(producer)
    publisher.start()
    executor = ActionExecutor(adapter, ledger, Backoff.from_settings(settings.executor.retry))
    runner = ExecutorRunner(
        settings, executor, publisher, tracer_provider=tracer_provider, codec=codec, **consumer_overrides
    )
    register_executor_meters(runner, meter_provider)
    server = None
    try:
        running = RunningExecutor(runner)
        if health:
            server = await _start_health(
                runner, settings.executor.health_host, settings.executor.health_port, exposition
            )
            running.health_port = server.port
        if on_start is not None:
            on_start(running)
        await runner.run(stop)
    finally:
        if server is not None:
            await server.stop()
        await executor.aclose()
        await asyncio.to_thread(publisher.close)
        if store is not None:
            store.close()
    return runner


class _HealthServer:
    def __init__(self, server: Any, task: asyncio.Task[None]) -> None:
        self.server = server
        self.task = task

    @property
    def port(self) -> int:
        sockets = [s for srv in self.server.servers for s in srv.sockets]
        return int(sockets[0].getsockname()[1]) if sockets else 0

    async def stop(self) -> None:
        self.server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.task, 5.0)


async def _start_health(
    runner: ExecutorRunner, host: str, port: int, exposition: MetricsExposition | None = None
) -> _HealthServer:
    import uvicorn

    class QuietServer(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:  # the executor owns SIGTERM/SIGINT
            yield

    config = uvicorn.Config(health_app(runner, exposition), host=host, port=port, log_level="warning", lifespan="off")
    server = QuietServer(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # raises why it could not start (port in use...)
            raise OSError(f"the health server on {host}:{port} stopped at start")
        await asyncio.sleep(0.01)
    return _HealthServer(server, task)


def serve(
    settings: Settings,
    tracer_provider: trace.TracerProvider | None = None,
    meter_provider: metrics.MeterProvider | None = None,
    exposition: MetricsExposition | None = None,
) -> None:
    """Run the executor until SIGINT or SIGTERM (the CLI's entry point)."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_executor(
            settings, stop, tracer_provider=tracer_provider, meter_provider=meter_provider, exposition=exposition
        )

    asyncio.run(main())


def run_executor_until(
    settings: Settings,
    done: Callable[[ExecutorRunner], bool],
    timeout_s: float,
    **kwargs: Any,
) -> ExecutorRunner:
    """Run the executor on a fresh event loop until ``done(runner)`` holds (tests, benchmarks).

    :raises TimeoutError: when it does not within ``timeout_s``.
    """

    async def main() -> ExecutorRunner:
        stop = asyncio.Event()
        holder: dict[str, ExecutorRunner] = {}
        task = asyncio.create_task(
            run_executor(settings, stop, on_start=lambda r: holder.update(runner=r.runner), **kwargs)
        )
        deadline = time.monotonic() + timeout_s
        try:
            while not ("runner" in holder and done(holder["runner"])):
                if task.done():
                    return task.result()
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the executor did not reach its condition within {timeout_s} s")
                await asyncio.sleep(0.02)
        finally:
            stop.set()
            runner = await task
        return runner

    return asyncio.run(main())
