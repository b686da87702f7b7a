"""`selauto executor`: apply executed actions to the platform.

Mount it in ``selective_autonomy/cli.py`` with::

    from selective_autonomy.edges.executor.cli import executor
    app.command()(executor)
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from selective_autonomy.config import Settings, load_settings

if TYPE_CHECKING:  # the executor's modules (the store, confluent-kafka) load when it runs, not for --help
    from opentelemetry import metrics, trace

    from selective_autonomy.streams.prometheus import MetricsExposition


def executor(
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="YAML settings file (also SELAUTO_CONFIG_FILE); env SELAUTO_* wins."),
    ] = None,
    health_port: Annotated[int | None, typer.Option(help="Health port (default: executor.health_port, 6067).")] = None,
    loglevel: Annotated[str, typer.Option(help="Python log level.")] = "info",
) -> None:
    """Run the BPM executor: apply actions.executed to the platform over HTTP.

    Each action goes through the HTTP route of its type (Idempotency-Key = action id, retries with backoff)
    and is recorded in the feedback store, so a redelivery is never applied twice; a refusal becomes
    ActionFailed plus an execution_failed operator deferral. Health on :6067/healthz and /readyz, Prometheus
    metrics on :6067/metrics; stops on SIGTERM.
    """
    import logging

    from opentelemetry import trace

    from selective_autonomy.edges.executor.adapter_choice import adapter_for
    from selective_autonomy.errors import ConfigError, SchemaRegistryError
    from selective_autonomy.streams.meters import process_meters
    from selective_autonomy.streams.tracing import build_tracer_provider

    logging.basicConfig(level=loglevel.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = load_settings(config)
    if health_port is not None:
        settings = settings.model_copy(
            update={"executor": settings.executor.model_copy(update={"health_port": health_port})}
        )
    try:
        adapter_for(settings.executor)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    telemetry = settings.telemetry
    provider = build_tracer_provider(telemetry.service_name, telemetry.otlp_endpoint, telemetry.console)
    trace.set_tracer_provider(provider)
    meters = process_meters(telemetry)
    routes = ", ".join(sorted(settings.executor.http.routes))
    typer.echo(
        f"executor: {settings.topics.actions_executed} -> HTTP routes [{routes}]; "
        f"health on :{settings.executor.health_port}/healthz, metrics on /metrics"
    )
    try:
        serve(settings, tracer_provider=provider, meter_provider=meters.provider, exposition=meters.exposition)
    except SchemaRegistryError as exc:  # at start-up: the codec registers its subjects first
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo("executor stopped")


def serve(
    settings: Settings,
    tracer_provider: trace.TracerProvider | None = None,
    meter_provider: metrics.MeterProvider | None = None,
    exposition: MetricsExposition | None = None,
) -> None:
    """Run the executor until SIGINT or SIGTERM."""
    from selective_autonomy.edges.executor.wiring import run_executor

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_executor(
            settings, stop, tracer_provider=tracer_provider, meter_provider=meter_provider, exposition=exposition
        )

    asyncio.run(main())
