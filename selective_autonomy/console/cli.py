"""`selauto console`: run the operator console with uvicorn.

Mount it in ``selective_autonomy/cli.py`` with::

    from selective_autonomy.console.cli import console
    app.command()(console)
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from selective_autonomy.cli_output import emit_json
from selective_autonomy.config import ConsoleSettings, Settings, load_settings


def serve(
    settings: Settings,
    console: ConsoleSettings | None = None,
    host: str | None = None,
    port: int | None = None,
    log_level: str = "info",
) -> None:
    """Serve the console until SIGINT/SIGTERM (uvicorn handles both); open SSE streams get 3 s to end.
    Its metrics go over OTLP when ``telemetry.otlp_endpoint`` is set, and to ``GET /metrics``."""
    import uvicorn

    from selective_autonomy.console.app import create_app
    from selective_autonomy.errors import SchemaRegistryError
    from selective_autonomy.streams.meters import process_meters

    config = console or settings.console
    meters = process_meters(settings.telemetry)
    try:
        app = create_app(settings, console=config, meter_provider=meters.provider, exposition=meters.exposition)
    except SchemaRegistryError as exc:  # the inbox feed's codec registers its subjects first
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    uvicorn.run(
        app,
        host=host or config.host,
        port=port or config.port,
        log_level=log_level,
        proxy_headers=False,
        timeout_graceful_shutdown=3,
    )


def console(
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="YAML settings file (also SELAUTO_CONFIG_FILE); env SELAUTO_* wins."),
    ] = None,
    host: Annotated[str | None, typer.Option(help="Listen address (default: console.host, 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: console.port, 8080).")] = None,
    loglevel: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Run the operator console: the inbox of deferred steps, answered by accept / correct / alternative.

    Operators and their tokens come from console.operators (SELAUTO_CONSOLE__OPERATORS='{"alice": "token"}').
    """
    settings = load_settings(config)
    console_config = settings.console
    if not console_config.operators:
        typer.echo("warning: no operators configured (console.operators); nobody can sign in", err=True)
    typer.echo(f"console on http://{host or console_config.host}:{port or console_config.port}/")
    serve(settings, console_config, host=host, port=port, log_level=loglevel)


def console_openapi(
    out: Annotated[
        Path | None, typer.Option(help="Write here, e.g. docs/openapi-console.json; default stdout.")
    ] = None,
) -> None:
    """Print the console JSON API's OpenAPI document (the committed copy is docs/openapi-console.json)."""
    from selective_autonomy.console.openapi import openapi_document

    emit_json(openapi_document(), out)
