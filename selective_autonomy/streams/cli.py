"""`selauto broker` and `selauto topics`: the embedded broker and the project's topics.

Mounted in ``selective_autonomy/cli.py``.
"""

from __future__ import annotations

import signal
import threading
from typing import Annotated

import typer

from selective_autonomy.cli_options import ConfigOption
from selective_autonomy.config import load_settings

topics_app = typer.Typer(help="Kafka topics used by the project.", no_args_is_help=True)


def broker(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1; 0 picks a free one.")] = 9092,
    partitions: Annotated[int | None, typer.Option(help="Partitions per project topic (default: settings).")] = None,
    config: ConfigOption = None,
) -> None:
    """Run the embedded Kafka-compatible broker (Tansu, in memory) and create the project's topics.

    Prints the bootstrap address, then runs until Ctrl-C or SIGTERM. Memory storage: everything is
    lost when it stops. For production, point SELAUTO_KAFKA__BOOTSTRAP_SERVERS at a real cluster.
    """
    from selective_autonomy.streams.broker import EmbeddedBroker
    from selective_autonomy.streams.topics import ensure_topics

    settings = load_settings(config)
    broker_settings = settings.broker.model_copy(update={"port": port})
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with EmbeddedBroker(broker_settings) as running:
        topic_settings = (
            settings.topics if partitions is None else settings.topics.model_copy(update={"partitions": partitions})
        )
        local = settings.model_copy(update={"kafka": running.kafka_settings(settings.kafka), "topics": topic_settings})
        created = ensure_topics(local)
        typer.echo(f"broker ready: bootstrap servers {running.bootstrap_servers} (tansu, memory storage)")
        typer.echo(f"topics: {', '.join(created) or 'already present'}")
        typer.echo(
            f"use: export SELAUTO_KAFKA__BOOTSTRAP_SERVERS={running.bootstrap_servers} SELAUTO_KAFKA__PROFILE=tansu"
        )
        while not stop.wait(0.5):
            if not running.running:
                typer.echo("broker exited unexpectedly", err=True)
                raise typer.Exit(1)
    typer.echo("broker stopped")


@topics_app.command("create")
def topics_create(config: ConfigOption = None) -> None:
    """Create the project's topics on the configured cluster (existing ones are left alone)."""
    from selective_autonomy.streams.topics import ensure_topics

    settings = load_settings(config)
    created = ensure_topics(settings)
    typer.echo(f"created: {', '.join(created) or 'none (all present)'}")


@topics_app.command("list")
def topics_list(config: ConfigOption = None) -> None:
    """Print the configured topic names."""
    settings = load_settings(config)
    for role, name in settings.topics.names().items():
        typer.echo(f"{role:20} {name}")
