"""The `selauto` command line. Thin commands: each parses options, builds settings, and calls a
function that does the work (and is tested on its own)."""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from selective_autonomy import __version__
from selective_autonomy.config import Settings, load_settings, redacted
from selective_autonomy.console.cli import console, console_openapi
from selective_autonomy.controls.cli import pause, pending_line, resume, stage_app
from selective_autonomy.edges.executor.cli import executor
from selective_autonomy.edges.ingest.cli import ingest_app
from selective_autonomy.errors import SchemaRegistryError
from selective_autonomy.inference.llm.cli import llm_app
from selective_autonomy.inference.policy_cli import eval_policy_command, train_policy_command
from selective_autonomy.onboarding.cli import models_app, process_app
from selective_autonomy.simulator.cli import sim_app
from selective_autonomy.traces.cli import import_app

if TYPE_CHECKING:
    from selective_autonomy.demo.from_zero import FromZeroConfig

app = typer.Typer(
    name="selauto",
    help="Selective autonomy for support workflows: learn from operator traces, execute only what the critic passes.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
topics_app = typer.Typer(help="Kafka topics used by the project.", no_args_is_help=True)
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

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="YAML settings file (also SELAUTO_CONFIG_FILE); env SELAUTO_* wins over it."),
]


def _settings(config: Path | None, **overrides: Any) -> Settings:
    return load_settings(config, **overrides)


@app.command()
def version() -> None:
    """Print the package version."""
    typer.echo(__version__)


@app.command()
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

    settings = _settings(config)
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


@app.command()
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

    settings = _settings(config)
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


@contextmanager
def _demo_broker(settings: Settings) -> Iterator[Settings]:
    """The embedded broker with the project's topics, and settings on it with a fresh work directory."""
    import tempfile

    from selective_autonomy.streams.broker import EmbeddedBroker
    from selective_autonomy.streams.topics import ensure_topics

    workdir = Path(tempfile.mkdtemp(prefix="selauto-demo-"))
    with EmbeddedBroker() as running:
        typer.echo(f"embedded broker on {running.bootstrap_servers} (memory storage); work dir {workdir}")
        local = settings.model_copy(
            update={
                "kafka": running.kafka_settings(settings.kafka),
                "data_dir": workdir,
                "models_dir": workdir / "models",
                "app_id": "selauto-demo",
            }
        )
        ensure_topics(local)
        yield local


@app.command()
def demo(
    log: Annotated[Path | None, typer.Option(help="Event log (XES or CSV); default: the Helpdesk log.")] = None,
    mapping: Annotated[str, typer.Option(help="Mapping file, or a built-in name (helpdesk, bpi2012w).")] = "helpdesk",
    limit_cases: Annotated[int | None, typer.Option(help="Only the first N cases of the log.")] = None,
    policy: Annotated[
        str | None, typer.Option(help="Policy to train: embedded (default) or ngram. Not with --from-zero.")
    ] = None,
    concurrency: Annotated[int, typer.Option(help="Live sessions in flight at once.")] = 50,
    target_precision: Annotated[float, typer.Option(help="Precision of executed steps to certify.")] = 0.9,
    from_zero: Annotated[
        bool,
        typer.Option(
            "--from-zero",
            help="Start from the process schema alone (empty models directory): the worker records the "
            "operators' sessions, trains the first policy, and goes copilot, then selective, by itself.",
        ),
    ] = False,
    first_policy_cases: Annotated[
        int | None,
        typer.Option(
            help="--from-zero: complete recorded cases before the first policy (default: learning.first_policy_cases)."
        ),
    ] = None,
    day_seconds: Annotated[
        float, typer.Option(help="--from-zero: wall seconds per day of the log (sessions start at their log time).")
    ] = 0.3,
    out: Annotated[Path, typer.Option(help="Directory for the report (Markdown, PNG, JSON).")] = Path("reports"),
    config: ConfigOption = None,
) -> None:
    """The main job on the embedded broker: replay real traces, learn, go selective, print the report.

    Starts the broker, imports the log, trains the policy on the past, runs the copilot stage over the
    next slice with simulated operators (feedback through Kafka), trains the critic and certifies
    thresholds, promotes to selective, replays the future as concurrent live sessions, and writes
    reports/<log>/report.md with its plots.

    With --from-zero nothing is trained up front: the process is registered from its schema, the log's
    sessions run live in their own order, and the worker's trace recorder and learning loop take it
    from logging to a first policy, copilot, a certificate and selective; the report
    (reports/<log>-from-zero/report.md) shows that timeline in sessions and in days of the log.
    """
    from selective_autonomy.traces.datasets import helpdesk_log_path

    settings = _settings(config)
    source = log or helpdesk_log_path(settings.datasets_dir)
    name = source.name.split(".")[0].lower()
    if from_zero:
        if policy is not None:
            raise typer.BadParameter("the first policy is the learning loop's (embedded)", param_hint="--policy")
        from selective_autonomy.demo.from_zero import FromZeroConfig

        run_config = FromZeroConfig(
            log=source,
            mapping=mapping,
            limit_cases=limit_cases,
            concurrency=concurrency,
            target_precision=target_precision,
            first_policy_cases=first_policy_cases or settings.learning.first_policy_cases,
            day_s=day_seconds,
        )
        _demo_from_zero(settings, run_config, out / f"{name}-from-zero")
        return

    from selective_autonomy.demo.loop import DemoConfig, run_demo
    from selective_autonomy.demo.report import certified_vs_realised, write_report

    with _demo_broker(settings) as local:
        demo_config = DemoConfig(
            log=source,
            mapping=mapping,
            limit_cases=limit_cases,
            policy=policy or "embedded",
            concurrency=concurrency,
            target_precision=target_precision,
        )
        result = run_demo(local, demo_config, progress=typer.echo)
    report = write_report(result, out / name)
    typer.echo("")
    typer.echo(report.read_text())
    typer.echo(certified_vs_realised(result))
    typer.echo(f"report written to {report}")


def _demo_from_zero(settings: Settings, run_config: FromZeroConfig, out: Path) -> None:
    from selective_autonomy.demo.from_zero import run_from_zero
    from selective_autonomy.demo.from_zero_report import certified_vs_realised, timeline_table, write_report

    with _demo_broker(settings) as local:
        result = run_from_zero(local, run_config, progress=typer.echo)
    report = write_report(result, out)
    typer.echo("")
    typer.echo("\n".join(timeline_table(result)))
    typer.echo(certified_vs_realised(result))
    typer.echo(f"report written to {report}")


@eval_app.command("critic")
def eval_critic(
    log: Annotated[str, typer.Option(help="helpdesk, bpi2012w, sgd-dev, or an event-log path.")] = "helpdesk",
    mapping: Annotated[str | None, typer.Option(help="Mapping file or built-in name (for a path).")] = None,
    policy: Annotated[
        str, typer.Option(help="Policy whose suggestions the critic judges: embedded or ngram.")
    ] = "ngram",
    processes: Annotated[int, typer.Option(help="For multi-process logs (SGD): the N largest processes.")] = 3,
    target_precision: Annotated[float, typer.Option(help="Precision to certify.")] = 0.9,
    out: Annotated[Path, typer.Option(help="Directory for critic_eval_<log>.json and .png.")] = Path("bench/results"),
) -> None:
    """Critic gate vs policy-confidence gate at equal recall, coverage at the certified threshold, and
    the precision realised on the future split (past 40% trains the policy, the next 30% is the
    copilot stage with simulated operators, the last 30% is the future)."""
    from selective_autonomy.config import LearningSettings
    from selective_autonomy.demo.critic_eval import evaluate_critic, write_critic_eval
    from selective_autonomy.inference.datasets import load_log, log_label
    from selective_autonomy.inference.embedded_policy import EmbeddedPolicy
    from selective_autonomy.inference.ngram import NGramPolicy
    from selective_autonomy.inference.protocol import Policy
    from selective_autonomy.traces.split import chronological_split

    label = log_label(log)
    datasets = load_settings().datasets_dir
    loaded = sorted(load_log(log, mapping, data_dir=datasets), key=lambda p: -len(p.cases))[:processes]
    for process in loaded:
        train, copilot, future = chronological_split(process.cases, (0.4, 0.3, 0.3))
        trained: Policy = (
            EmbeddedPolicy.train(process.schema, train)
            if policy == "embedded"
            else NGramPolicy(process.schema).fit(train)
        )
        name = label if len(loaded) == 1 else f"{label}-{process.schema.process_id}"
        report = evaluate_critic(
            process.schema, trained, copilot, future, LearningSettings(target_precision=target_precision), log=name
        )
        json_path, _png = write_critic_eval(report, out)
        critic, conf = report.critic_at_certified, report.confidence_at_equal_recall
        typer.echo(f"{name}: future steps {report.future_steps}, policy top-1 {report.policy_top1:.3f}")
        if critic is None:
            typer.echo("  no threshold certified: the process stays in copilot")
        else:
            typer.echo(
                f"  critic gate at its {len(report.certified_thresholds)} certified thresholds: coverage "
                f"{critic.coverage:.3f}, recall {critic.recall:.3f}, precision {critic.precision}"
            )
            if conf is not None:
                typer.echo(
                    f"  policy-confidence gate at equal recall: recall {conf.recall:.3f}, precision {conf.precision}"
                )
        typer.echo(f"  written {json_path}")


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


@topics_app.command("create")
def topics_create(config: ConfigOption = None) -> None:
    """Create the project's topics on the configured cluster (existing ones are left alone)."""
    from selective_autonomy.streams.topics import ensure_topics

    settings = _settings(config)
    created = ensure_topics(settings)
    typer.echo(f"created: {', '.join(created) or 'none (all present)'}")


@topics_app.command("list")
def topics_list(config: ConfigOption = None) -> None:
    """Print the configured topic names."""
    settings = _settings(config)
    for role, name in settings.topics.names().items():
        typer.echo(f"{role:20} {name}")


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
