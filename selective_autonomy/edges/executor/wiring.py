"""The executor's composition root: the adapter, the ledger, the publisher, the runner, its meters
and its health server, built from the settings and run until a stop event is set."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from opentelemetry import metrics, trace

from selective_autonomy.config import Settings
from selective_autonomy.edges.executor.adapter_choice import adapter_for
from selective_autonomy.edges.executor.adapters import ActionAdapter
from selective_autonomy.edges.executor.health import health_app
from selective_autonomy.edges.executor.ledger import Ledger, StoreLedger
from selective_autonomy.edges.executor.meters import register_executor_meters
from selective_autonomy.edges.executor.retry import Backoff
from selective_autonomy.edges.executor.runner import ExecutorRunner
from selective_autonomy.edges.executor.service import ActionExecutor
from selective_autonomy.edges.publisher import AckingProducer
from selective_autonomy.edges.records import KafkaPublisher
from selective_autonomy.edges.serving import start_background_server
from selective_autonomy.store import FeedbackStore
from selective_autonomy.streams.prometheus import MetricsExposition
from selective_autonomy.streams.serialization import codec_for


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
    :param ledger: default the feedback store at ``store.url`` (:meth:`StoreSettings.resolved_url`).
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
            server = await start_background_server(
                health_app(runner, exposition), settings.executor.health_host, settings.executor.health_port
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


def run_executor_until(
    settings: Settings,
    done: Callable[[ExecutorRunner], bool],
    timeout_s: float,
    **kwargs: Any,
) -> ExecutorRunner:
    """Run the executor on a fresh event loop until ``done(runner)`` holds.

    For the integration tests and ``bench/bench_edges.py``, which both need a finished run's counters;
    it stays here because the benchmark runs as a script and cannot import the tests.

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
