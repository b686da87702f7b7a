"""`selauto worker`: the decide and feedback agents and the trace recorder in one faust worker.

Mounted in ``selective_autonomy/cli.py``.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from selective_autonomy.cli_options import ConfigOption
from selective_autonomy.config import load_settings
from selective_autonomy.errors import SchemaRegistryError


def worker(
    config: ConfigOption = None,
    loglevel: Annotated[str, typer.Option(help="faust/python log level.")] = "info",
) -> None:
    """Run the decide agent: consume ui.state, decide with the models in service, emit
    actions.executed / operator.deferrals. Health on :6066/healthz and /readyz, Prometheus metrics on
    :6066/metrics; stops on SIGTERM."""
    import faust
    from opentelemetry import metrics, trace

    from selective_autonomy.agents.worker import build_worker
    from selective_autonomy.streams.meters import process_meters
    from selective_autonomy.streams.tracing import process_tracer_provider

    settings = load_settings(config)
    telemetry = settings.telemetry
    provider = process_tracer_provider(telemetry)
    trace.set_tracer_provider(provider)
    meters = process_meters(telemetry)
    metrics.set_meter_provider(meters.provider)
    try:
        running = build_worker(
            settings, web=True, tracer_provider=provider, meter_provider=meters.provider, exposition=meters.exposition
        )
    except SchemaRegistryError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    loaded = running.models.versions()
    waiting = f"none yet (watching {settings.models_dir})"
    typer.echo(f"models in service: {json.dumps(loaded) if loaded else waiting}")
    faust.Worker(running.app, loglevel=loglevel, quiet=True).execute_from_commandline()
