"""`selauto executor`: apply executed actions to the platform.

Mount it in ``selective_autonomy/cli.py`` with::

    from selective_autonomy.edges.executor.cli import executor
    app.command()(executor)
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from selective_autonomy.config import load_settings


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
    from selective_autonomy.edges.executor.runner import serve
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
