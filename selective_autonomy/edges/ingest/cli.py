"""`selauto ingest`: the platform's webhook.

Mount it in ``selective_autonomy/cli.py`` with::

    from selective_autonomy.edges.ingest.cli import ingest_app
    app.add_typer(ingest_app, name="ingest")
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from selective_autonomy.cli_options import ConfigOption
from selective_autonomy.cli_output import emit_json
from selective_autonomy.config import load_settings

ingest_app = typer.Typer(
    help="Receive UI states from the BPM/CRM platform and publish them to ui.state.", no_args_is_help=True
)


@ingest_app.command("http")
def http(
    config: ConfigOption = None,
    host: Annotated[str | None, typer.Option(help="Listen address (default: ingest.host, 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: ingest.port, 8088).")] = None,
    loglevel: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Serve the webhook: POST /v1/ui-state and /v1/ui-state:batch onto ui.state.

    Each request is authenticated (bearer token or HMAC signature), validated against the contract and the
    process schemas in models_dir, published, and answered 202 once the broker acknowledged it.
    GET /healthz for liveness, GET /metrics for Prometheus.

    Credentials: SELAUTO_INGEST__TOKENS='{"crm": "<token>"}' and/or SELAUTO_INGEST__HMAC_SECRETS='{"crm": "<secret>"}'.
    """
    import uvicorn

    from selective_autonomy.edges.ingest.app import create_ingest_app
    from selective_autonomy.errors import ConfigError, SchemaRegistryError
    from selective_autonomy.streams.meters import process_meters

    settings = load_settings(config)
    meters = process_meters(settings.telemetry)
    try:
        app = create_ingest_app(settings, meter_provider=meters.provider, exposition=meters.exposition)
    except (ConfigError, SchemaRegistryError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    bind_host, bind_port = host or settings.ingest.host, port or settings.ingest.port
    typer.echo(f"ingest on http://{bind_host}:{bind_port}/v1/ui-state -> topic {settings.topics.ui_state}")
    uvicorn.run(
        app, host=bind_host, port=bind_port, log_level=loglevel, proxy_headers=False, timeout_graceful_shutdown=5
    )


@ingest_app.command("openapi")
def openapi(
    out: Annotated[Path | None, typer.Option(help="Write here, e.g. docs/openapi-ingest.json; default stdout.")] = None,
) -> None:
    """Print the ingest API's OpenAPI document (the committed copy is docs/openapi-ingest.json)."""
    from selective_autonomy.edges.ingest.app import openapi_document

    emit_json(openapi_document(), out)
