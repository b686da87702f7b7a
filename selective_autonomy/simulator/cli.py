"""``selauto sim ...``: replay held-out cases against the running decide agent; generate ABCD sessions.

Mount with ``app.add_typer(sim_app, name="sim")`` in :mod:`selective_autonomy.cli`. Heavy imports
(polars, confluent-kafka) happen inside the commands, so ``selauto --help`` stays fast.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Annotated

import typer
import yaml

from selective_autonomy.cli_options import ConfigOption
from selective_autonomy.errors import SelautoError
from selective_autonomy.traces.format import Case

sim_app = typer.Typer(
    help="Simulate support sessions: replay recorded cases through the broker against the decide agent, "
    "with a simulated operator answering deferrals; generate synthetic ABCD sessions.",
    no_args_is_help=True,
)


def _fail(error: Exception) -> typer.Exit:
    typer.echo(f"error: {error}", err=True)
    return typer.Exit(code=1)


def _load_cases(cases: Path | None, log: Path | None, mapping: str | None, skip: int, limit: int | None) -> list[Case]:
    from itertools import islice

    from selective_autonomy.traces.format import read_cases

    if (cases is None) == (log is None):
        raise typer.BadParameter("give either a cases JSONL file or --log with --mapping")
    stop = None if limit is None else skip + limit
    if cases is not None:
        return list(islice(read_cases(cases), skip, stop))
    if log is None or mapping is None:
        raise typer.BadParameter("--log needs --mapping (a YAML file or a built-in mapping name)")
    from selective_autonomy.traces.eventlog import iter_cases, read_event_log
    from selective_autonomy.traces.mapping import load_mapping

    table = read_event_log(log, load_mapping(mapping), limit_cases=stop)
    return list(islice(iter_cases(table), skip, stop))


@sim_app.command("replay")
def replay(
    cases: Annotated[
        Path | None, typer.Argument(help="Held-out cases (JSONL, .gz ok).", exists=True, dir_okay=False)
    ] = None,
    log: Annotated[
        Path | None, typer.Option("--log", help="Or an event log (XES/CSV) to replay.", exists=True, dir_okay=False)
    ] = None,
    mapping: Annotated[str | None, typer.Option("--mapping", "-m", help="Mapping of --log (file or name).")] = None,
    skip: Annotated[int, typer.Option("--skip", min=0, help="Skip the first N cases (e.g. the training part).")] = 0,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Replay at most N cases.")] = None,
    sessions: Annotated[int, typer.Option("--sessions", "-n", min=1, help="Sessions in flight at once.")] = 10,
    timeout_s: Annotated[
        float, typer.Option("--timeout", min=0.1, help="Seconds without a decision before a session is stalled.")
    ] = 30.0,
    handling_from: Annotated[
        Path | None,
        typer.Option(
            "--handling-from",
            exists=True,
            dir_okay=False,
            help="Training cases (JSONL) to estimate operator step times from; default: the replayed cases.",
        ),
    ] = None,
    cap_s: Annotated[float, typer.Option("--cap", min=0.0, help="Longest gap between events counted as work.")] = 900,
    interruption_s: Annotated[float, typer.Option("--interruption", min=0.0, help="Seconds per deferral.")] = 30.0,
    alternatives: Annotated[
        Path | None,
        typer.Option(
            "--alternatives",
            exists=True,
            dir_okay=False,
            help="YAML/JSON {recorded action type: [acceptable suggested types]}.",
        ),
    ] = None,
    wrong_accept_rate: Annotated[float, typer.Option(min=0.0, max=1.0, help="Operator noise.")] = 0.0,
    needless_correction_rate: Annotated[float, typer.Option(min=0.0, max=1.0, help="Operator noise.")] = 0.0,
    seed: Annotated[int, typer.Option(help="Seed of the operator's noise.")] = 0,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Also write the report here (JSON).")] = None,
    config: ConfigOption = None,
) -> None:
    """Replay cases as live sessions against the decide agent on the configured broker; print the report."""
    from selective_autonomy.config import load_settings
    from selective_autonomy.simulator.operator_model import (
        HandlingTimeModel,
        OperatorConfig,
        OperatorModel,
        alternatives_from_mapping,
    )
    from selective_autonomy.simulator.replay import ReplayConfig, replay_cases
    from selective_autonomy.traces.format import read_cases

    try:
        settings = load_settings(config)
        todo = _load_cases(cases, log, mapping, skip, limit)
        training = list(read_cases(handling_from)) if handling_from else todo
        handling = HandlingTimeModel.from_cases(training, cap_s=cap_s, interruption_s=interruption_s)
        equivalents = alternatives_from_mapping(yaml.safe_load(alternatives.read_text()) or {}) if alternatives else {}
        operator = OperatorModel(
            OperatorConfig(
                alternatives=equivalents,
                wrong_accept_rate=wrong_accept_rate,
                needless_correction_rate=needless_correction_rate,
                seed=seed,
            )
        )
        report = replay_cases(
            settings,
            todo,
            config=ReplayConfig(concurrency=sessions, decision_timeout_s=timeout_s),
            operator=operator,
            handling=handling,
        )
    except (SelautoError, OSError, yaml.YAMLError) as error:
        raise _fail(error) from error
    typer.echo(report.summary())
    typer.echo(report.model_dump_json(indent=2))
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(report.model_dump_json(indent=2))
    if report.stalled_sessions:
        typer.echo(f"{report.stalled_sessions} session(s) stalled: is a worker serving these topics?", err=True)
        raise typer.Exit(code=2)


@sim_app.command("abcd")
def abcd(
    out: Annotated[Path, typer.Option("--out", "-o", help="JSONL file to write the cases to (.gz compresses).")],
    cases: Annotated[int, typer.Option("--cases", "-n", min=1, help="Sessions to generate.")] = 1000,
    seed: Annotated[int, typer.Option(help="Seed of intents, slots, noise and durations.")] = 0,
    intents: Annotated[
        str | None, typer.Option("--intents", help="Comma-separated subflows to draw from (default: all).")
    ] = None,
    skip_rate: Annotated[float, typer.Option(min=0.0, max=1.0, help="P(a required button is skipped).")] = 0.02,
    swap_rate: Annotated[float, typer.Option(min=0.0, max=1.0, help="P(two neighbours are swapped).")] = 0.02,
    insert_rate: Annotated[float, typer.Option(min=0.0, max=1.0, help="P(a wrong button is pressed).")] = 0.02,
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="ABCD folder (kb, ontology, guidelines); default: datasets_dir/abcd."),
    ] = None,
) -> None:
    """Generate synthetic ABCD support sessions from the guidelines (a process with no history)."""
    from collections import Counter

    from selective_autonomy.config import load_settings
    from selective_autonomy.simulator.synthetic import NoiseConfig, SyntheticConfig, synthetic_abcd_cases
    from selective_autonomy.traces.datasets import abcd_data_dir
    from selective_autonomy.traces.format import write_cases

    chosen = [name.strip() for name in intents.split(",") if name.strip()] if intents else None
    settings = SyntheticConfig(
        cases=cases,
        seed=seed,
        intents=chosen,
        noise=NoiseConfig(skip_rate=skip_rate, swap_rate=swap_rate, insert_rate=insert_rate),
    )
    flows: Counter[str] = Counter()
    steps = Counter[str]()

    def counted(stream: Iterable[Case]) -> Iterator[Case]:
        for case in stream:
            flows[case.business_cluster] += 1
            steps["steps"] += len(case.steps)
            yield case

    try:
        folder = data_dir or abcd_data_dir(load_settings().datasets_dir)
        written = write_cases(out, counted(synthetic_abcd_cases(settings, data_dir=folder)))
    except (SelautoError, FileNotFoundError) as error:
        raise _fail(error) from error
    typer.echo(f"wrote {out}: cases={written} steps={steps['steps']} flows={json.dumps(dict(sorted(flows.items())))}")
