"""`selauto demo` and `selauto eval critic`: the whole loop on the embedded broker, and the critic's
offline evaluation.

Mounted in ``selective_autonomy/cli.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from selective_autonomy.cli_options import ConfigOption
from selective_autonomy.config import Settings, load_settings

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from selective_autonomy.demo.critic_eval import CriticSource
    from selective_autonomy.demo.from_zero import FromZeroConfig
    from selective_autonomy.inference.llm.harness import LLMHarnessConfig
    from selective_autonomy.inference.protocol import Critic
    from selective_autonomy.learning.splits import EvidenceSplits
    from selective_autonomy.schemas.process import ProcessSchema


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

    settings = load_settings(config)
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


def eval_critic(
    log: Annotated[str, typer.Option(help="helpdesk, bpi2012w, sgd-dev, or an event-log path.")] = "helpdesk",
    mapping: Annotated[str | None, typer.Option(help="Mapping file or built-in name (for a path).")] = None,
    policy: Annotated[
        str, typer.Option(help="Policy whose suggestions the critic judges: embedded or ngram.")
    ] = "ngram",
    processes: Annotated[int, typer.Option(help="For multi-process logs (SGD): the N largest processes.")] = 3,
    limit: Annotated[int | None, typer.Option(help="Only the first N cases of the log.")] = None,
    target_precision: Annotated[float, typer.Option(help="Precision to certify.")] = 0.9,
    llm: Annotated[
        bool, typer.Option("--llm", help="Also train the LLM critic on the same feedback, serve it (vLLM), gate it.")
    ] = False,
    base: Annotated[
        Path | None, typer.Option(help="With --llm: local pretrained model to LoRA-tune (default: from scratch).")
    ] = None,
    llm_train_seconds: Annotated[float, typer.Option(help="With --llm: training time limit per process.")] = 300.0,
    llm_batch_size: Annotated[int, typer.Option(min=1, help="With --llm: examples per training step.")] = 16,
    llm_work_dir: Annotated[Path | None, typer.Option(help="With --llm: artefacts and server logs.")] = None,
    out: Annotated[Path, typer.Option(help="Directory for critic_eval_<log>.json and .png.")] = Path("bench/results"),
) -> None:
    """Critic gates (the embedded critic, and with --llm the LLM critic) vs the policy-confidence gate at
    equal recall, coverage at the certified thresholds, and the precision realised on the future split
    (past 40% trains the policy, the next 30% is the copilot stage with simulated operators, the last 30%
    is the future)."""
    from selective_autonomy.config import LearningSettings
    from selective_autonomy.demo.critic_eval import embedded_critic, evaluate_critic, write_critic_eval
    from selective_autonomy.inference.datasets import load_log, log_label
    from selective_autonomy.inference.embedded_policy import EmbeddedPolicy
    from selective_autonomy.inference.ngram import NGramPolicy
    from selective_autonomy.inference.protocol import Policy
    from selective_autonomy.traces.split import chronological_split

    label = log_label(log)
    datasets = load_settings().datasets_dir
    loaded = sorted(load_log(log, mapping, limit=limit, data_dir=datasets), key=lambda p: -len(p.cases))[:processes]
    critics: dict[str, CriticSource] = {"embedded": embedded_critic}
    options = {"log": log, "policy": policy, "limit": str(limit), "target_precision": str(target_precision)}
    if llm:
        options |= {
            "llm_base": str(base),
            "llm_train_seconds": str(llm_train_seconds),
            "llm_batch_size": str(llm_batch_size),
        }
    if llm:
        from selective_autonomy.inference.llm.harness import LLMHarnessConfig

        harness = LLMHarnessConfig(
            train_seconds=llm_train_seconds, base=base, batch_size=llm_batch_size, work_dir=llm_work_dir
        )
        critics["llm"] = _llm_critic_source(harness)
    for process in loaded:
        train, copilot, future = chronological_split(process.cases, (0.4, 0.3, 0.3))
        trained: Policy = (
            EmbeddedPolicy.train(process.schema, train)
            if policy == "embedded"
            else NGramPolicy(process.schema).fit(train)
        )
        name = label if len(loaded) == 1 else f"{label}-{process.schema.process_id}"
        config = LearningSettings(target_precision=target_precision)
        report = evaluate_critic(process.schema, trained, copilot, future, config, log=name, critics=critics)
        report.options.update(options)
        json_path, _png = write_critic_eval(report, out)
        typer.echo(f"{name}: future steps {report.future_steps}, policy top-1 {report.policy_top1:.3f}")
        for gate in report.critics:
            critic, conf = gate.at_certified, gate.confidence_at_equal_recall
            if critic is None:
                typer.echo(f"  {gate.name} critic: no threshold certified (the process stays in copilot)")
                continue
            typer.echo(
                f"  {gate.name} critic gate at its {len(gate.certified_thresholds)} certified thresholds: coverage "
                f"{critic.coverage:.3f}, recall {critic.recall:.3f}, precision {critic.precision}"
            )
            if conf is not None:
                typer.echo(
                    f"    policy-confidence gate at equal recall: recall {conf.recall:.3f}, precision {conf.precision}"
                )
        typer.echo(f"  written {json_path}")


def _llm_critic_source(config: LLMHarnessConfig) -> CriticSource:
    """The LLM critic as the critic evaluation takes it: trained on the train split's answers, served
    while certified and scored, Platt-scaled on the select split."""
    import tempfile

    from selective_autonomy.inference.llm.harness import served_llm_critic

    root = config.work_dir or Path(tempfile.mkdtemp(prefix="selauto-critic-eval-"))

    def source(schema: ProcessSchema, parts: EvidenceSplits) -> AbstractContextManager[Critic]:
        train = [(e.event, e.action, e.label) for e in parts.train]
        select = [e.critic_input() for e in parts.select]
        return served_llm_critic(schema, train, select, [e.label for e in parts.select], config, root)

    return source
