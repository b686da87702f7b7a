"""The `selauto` command line. Thin commands: each parses options, builds settings, and calls a
function that does the work (and is tested on its own)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from selective_autonomy import __version__
from selective_autonomy.agents.cli import worker
from selective_autonomy.cli_options import ConfigOption
from selective_autonomy.config import Settings, load_settings, redacted
from selective_autonomy.console.cli import console, console_openapi
from selective_autonomy.controls.cli import pause, pending_line, resume, stage_app
from selective_autonomy.demo.cli import demo, eval_critic
from selective_autonomy.edges.executor.cli import executor
from selective_autonomy.edges.ingest.cli import ingest_app
from selective_autonomy.inference.llm.cli import llm_app
from selective_autonomy.inference.policy_cli import eval_policy_command, train_policy_command
from selective_autonomy.onboarding.cli import models_app, process_app
from selective_autonomy.simulator.cli import sim_app
from selective_autonomy.streams.cli import broker, topics_app
from selective_autonomy.traces.cli import import_app

app = typer.Typer(
    name="selauto",
    help="Selective autonomy for support workflows: learn from operator traces, execute only what the critic passes.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
config_app = typer.Typer(help="Inspect the effective configuration.", no_args_is_help=True)
schema_app = typer.Typer(help="Event contracts and process schemas.", no_args_is_help=True)
app.add_typer(topics_app, name="topics")
app.add_typer(config_app, name="config")
app.add_typer(schema_app, name="schema")
eval_app = typer.Typer(help="Offline evaluation on real logs (chronological splits).", no_args_is_help=True)
app.add_typer(eval_app, name="eval")
train_app = typer.Typer(help="Train model artefacts from traces.", no_args_is_help=True)
app.add_typer(train_app, name="train")
train_app.command("policy")(train_policy_command)
app.add_typer(llm_app, name="llm")
eval_app.command("policy")(eval_policy_command)
app.add_typer(import_app, name="import")
app.add_typer(process_app, name="process")
app.add_typer(models_app, name="models")
app.add_typer(sim_app, name="sim")
app.command()(console)
app.command("console-openapi")(console_openapi)
app.add_typer(ingest_app, name="ingest")
app.command()(executor)
app.add_typer(stage_app, name="stage")
app.command()(pause)
app.command()(resume)


def _settings(config: Path | None, **overrides: Any) -> Settings:
    return load_settings(config, **overrides)


@app.command()
def version() -> None:
    """Print the package version."""
    typer.echo(__version__)


# After `version`: `selauto --help` lists the commands in the order they are added.
app.command()(broker)
app.command()(worker)
app.command()(demo)
eval_app.command("critic")(eval_critic)


@app.command()
def status(config: ConfigOption = None) -> None:
    """Stages, models in service, certified thresholds and promotions waiting for confirmation per
    process / business cluster, with the stage history from the feedback store."""
    from selective_autonomy.inference.registry import ModelRegistry
    from selective_autonomy.store import FeedbackStore

    settings = _settings(config)
    registry = ModelRegistry(settings.models_dir)
    processes = registry.processes()
    if not processes:
        typer.echo(f"no process in {settings.models_dir}")
        return
    with FeedbackStore.open(settings.store.resolved_url(settings.data_dir)) as store:
        for process_id in processes:
            schema, pointer = registry.schema(process_id), registry.pointer(process_id)
            typer.echo(
                f"{process_id} (revision {pointer.revision}): policy {pointer.policy or '-'}, "
                f"critic {pointer.critic or 'policy-confidence'}, thresholds {pointer.thresholds.version}"
            )
            for cluster in schema.business_clusters:
                stage = pointer.stage(cluster.id)
                thresholds = {
                    k.rsplit("/", 1)[-1]: v
                    for k, v in pointer.thresholds.values.items()
                    if k.startswith(f"{process_id}/{cluster.id}/")
                }
                hand = pointer.manual.get(cluster.id)
                pause = pointer.pause_for(cluster.id)
                held = f" (held by hand by {hand.by})" if hand else ""
                paused = f"; PAUSED ({'process' if pause[0] == '*' else 'cluster'}: {pause[1].reason})" if pause else ""
                typer.echo(f"  {cluster.id}: {stage.value}{held}; thresholds {thresholds or 'none certified'}{paused}")
                pending = pointer.pending_promotion(cluster.id)
                if pending is not None:
                    typer.echo(f"    {pending_line(pending)}")
                for change in store.stage_history(process_id, cluster.id)[-5:]:
                    typer.echo(
                        f"    {change.at:%Y-%m-%d %H:%M} {change.from_stage.value if change.from_stage else '-'}"
                        f" -> {change.to_stage.value}: {change.reason}"
                    )


@config_app.command("show")
def config_show(config: ConfigOption = None) -> None:
    """Print the effective settings as JSON, secrets masked."""
    typer.echo(json.dumps(redacted(_settings(config)), indent=2))


@schema_app.command("export")
def schema_export(
    out: Annotated[Path, typer.Option(help="Directory to write the expanded .avsc files and JSON Schemas into.")],
) -> None:
    """Write every event contract (expanded Avro) and the process-schema JSON Schema."""
    from selective_autonomy.schemas import contracts
    from selective_autonomy.schemas.process import process_schema_json_schema

    out.mkdir(parents=True, exist_ok=True)
    for name in contracts.EVENT_RECORDS:
        (out / f"{name}.avsc").write_text(json.dumps(contracts.self_contained_schema(name), indent=2))
    (out / "process-schema.json").write_text(json.dumps(process_schema_json_schema(), indent=2))
    typer.echo(f"wrote {len(contracts.EVENT_RECORDS)} contracts and the process schema format to {out}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
