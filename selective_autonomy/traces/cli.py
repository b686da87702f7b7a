"""``selauto import ...``: turn public datasets and event logs into JSONL traces plus process schemas.

Each import writes the cases (JSONL, gzip when the name ends in ``.gz``), optionally the process
schema (YAML), checks every case against that schema, and prints what it found, so a wrong mapping
shows up as odd counts or violations at import time rather than as a poor model later.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from tqdm import tqdm

from selective_autonomy.schemas.process import ProcessSchema
from selective_autonomy.traces.errors import TraceError
from selective_autonomy.traces.format import Case, read_cases, write_cases
from selective_autonomy.traces.validate import case_violations

if TYPE_CHECKING:
    from selective_autonomy.traces.eventlog import EventTable

import_app = typer.Typer(
    help="Import operator traces (XES/CSV event logs, SGD dialogues, ABCD guidelines) into JSONL cases and "
    "derive their process schemas; split cases chronologically.",
    no_args_is_help=True,
)

_SHOWN_VIOLATIONS = 5


@dataclass
class _Tally:
    """Counts gathered while cases stream to disk, plus the schema problems they have."""

    schemas: dict[str, ProcessSchema]
    cases: int = 0
    steps: int = 0
    actions: set[str] = field(default_factory=set)
    fields: set[str] = field(default_factory=set)
    violations: list[str] = field(default_factory=list)
    violation_count: int = 0

    def watch(self, cases: Iterable[Case]) -> Iterator[Case]:
        for case in cases:
            self.cases += 1
            self.steps += len(case.steps)
            for step in case.steps:
                self.actions.add(step.action.action_type)
                self.fields.update(step.state.fields)
            schema = self.schemas.get(case.process_id)
            found = case_violations(schema, [case]) if schema else [f"{case.case_id}: no schema {case.process_id!r}"]
            self.violation_count += len(found)
            self.violations.extend(found[: _SHOWN_VIOLATIONS - len(self.violations)])
            yield case

    def report(self, out: Path) -> None:
        schema_actions = {name for schema in self.schemas.values() for name in schema.action_names}
        typer.echo(
            f"wrote {out}: cases={self.cases} steps={self.steps} "
            f"actions={len(self.actions)} distinct in the data ({len(schema_actions)} in the schema) "
            f"fields={len(self.fields)} processes={len(self.schemas)}"
        )
        if self.violation_count:
            typer.echo(f"{self.violation_count} schema violation(s), e.g.:", err=True)
            for problem in self.violations:
                typer.echo(f"  {problem}", err=True)


def _write(cases: Iterable[Case], tally: _Tally, out: Path, total: int | None) -> None:
    progress = tqdm(tally.watch(cases), total=total, unit="case", desc=f"import -> {out.name}")
    write_cases(out, progress)
    tally.report(out)


def _fail(error: Exception) -> typer.Exit:
    typer.echo(f"error: {error}", err=True)
    return typer.Exit(code=1)


MappingOption = Annotated[
    str,
    typer.Option(
        "--mapping",
        "-m",
        help="Mapping YAML file, or the name of a built-in mapping (csv_example, ui_log_example, helpdesk, bpi2012w).",
    ),
]
OutOption = Annotated[Path, typer.Option("--out", "-o", help="JSONL file to write the cases to (.gz compresses).")]
SchemaOutOption = Annotated[
    Path | None, typer.Option("--schema-out", help="Also write the process schema here (YAML).")
]
LimitCasesOption = Annotated[
    int | None, typer.Option("--limit-cases", min=1, help="Import only the first N cases of the log (quick slices).")
]


def _import_event_log(log: Path, mapping_name: str, out: Path, schema_out: Path | None, limit: int | None) -> None:
    from selective_autonomy.traces.eventlog import read_event_log
    from selective_autonomy.traces.mapping import load_mapping

    try:
        table = read_event_log(log, load_mapping(mapping_name), limit_cases=limit)
    except TraceError as error:
        raise _fail(error) from error
    _write_table(table, out, schema_out)


def _write_table(table: EventTable, out: Path, schema_out: Path | None) -> None:
    from selective_autonomy.traces.eventlog import derive_process_schema, iter_cases

    try:
        schema = derive_process_schema(table)
    except TraceError as error:
        raise _fail(error) from error
    if table.dropped_events:
        typer.echo(f"dropped {table.dropped_events} event(s) without case id, activity or timestamp", err=True)
    if schema_out:
        schema.save(schema_out)
        typer.echo(f"wrote {schema_out}: {len(schema.actions)} actions, {len(schema.fields)} fields")
    _write(iter_cases(table), _Tally({schema.process_id: schema}), out, table.n_cases)


@import_app.command("xes")
def import_xes(
    log: Annotated[Path, typer.Argument(help="XES event log (.xes or .xes.gz).", exists=True, dir_okay=False)],
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="JSONL file to write the cases to (.gz compresses); needed to import."),
    ] = None,
    mapping: Annotated[
        str | None,
        typer.Option(
            "--mapping",
            "-m",
            help="Mapping YAML file, or a built-in mapping (helpdesk, bpi2012w); default: the log's XES standard "
            "keys, with every trace attribute that does not encode the case's future as a field.",
        ),
    ] = None,
    print_mapping: Annotated[
        bool,
        typer.Option("--print-mapping", help="Print the mapping (YAML, to save and edit) and exit without importing."),
    ] = False,
    schema_out: SchemaOutOption = None,
    limit_cases: LimitCasesOption = None,
) -> None:
    """Import an XES event log: one case per trace, one step per event, then close_chat."""
    from selective_autonomy.traces.eventlog import XES_TIMEZONE, normalize_events, read_event_log, read_xes
    from selective_autonomy.traces.mapping import load_mapping
    from selective_autonomy.traces.xes_mapping import default_xes_mapping, process_id_from_path

    if out is None and not print_mapping:
        raise _fail(ValueError("give --out FILE to import the log, or --print-mapping to see its mapping"))
    try:
        if mapping is not None:
            chosen = load_mapping(mapping)
            if print_mapping:
                typer.echo(chosen.to_yaml(), nl=False)
                return
            table = read_event_log(log, chosen, limit_cases=limit_cases)
        else:
            raw = read_xes(log)
            inferred = default_xes_mapping(raw, process_id_from_path(log), source=log.name)
            if print_mapping:
                typer.echo(inferred.to_yaml(), nl=False)
                return
            typer.echo(inferred.summary(), err=True)
            table = normalize_events(raw, inferred.mapping, limit_cases=limit_cases, naive_timezone=XES_TIMEZONE)
    except TraceError as error:
        raise _fail(error) from error
    if out is None:  # checked above: without --print-mapping, --out is given
        raise typer.BadParameter("give --out (or --print-mapping)")
    _write_table(table, out, schema_out)


@import_app.command("csv")
def import_csv(
    log: Annotated[Path, typer.Argument(help="CSV event log, one event per row.", exists=True, dir_okay=False)],
    mapping: MappingOption,
    out: OutOption,
    schema_out: SchemaOutOption = None,
    limit_cases: LimitCasesOption = None,
) -> None:
    """Import a CSV event log as the mapping describes its columns."""
    _import_event_log(log, mapping, out, schema_out, limit_cases)


@import_app.command("sgd")
def import_sgd(
    inputs: Annotated[
        list[Path],
        typer.Argument(help="SGD split folders (e.g. sgd/dev) or dialogues_NNN.json(.gz) files.", exists=True),
    ],
    out: OutOption,
    schema: Annotated[
        Path | None,
        typer.Option("--schema", help="SGD schema.json(.gz); default: the one in the first input's folder."),
    ] = None,
    schema_out: Annotated[
        Path | None, typer.Option("--schema-out", help="Folder to write one process schema per service (YAML).")
    ] = None,
    limit_dialogues: Annotated[
        int | None, typer.Option("--limit-dialogues", min=1, help="Import only the first N dialogues.")
    ] = None,
) -> None:
    """Import Schema-Guided Dialogue dialogues: one case per dialogue and service, one step per system action."""
    from selective_autonomy.traces.sgd import iter_sgd_cases, load_sgd_schemas, sgd_dialogue_files

    try:
        files = [f for path in inputs for f in (sgd_dialogue_files(path) if path.is_dir() else [path])]
        folder = inputs[0] if inputs[0].is_dir() else inputs[0].parent
        schema_path = schema or next(iter(sorted(folder.glob("schema.json*"))), folder / "schema.json.gz")
        schemas = load_sgd_schemas(schema_path)
    except TraceError as error:
        raise _fail(error) from error
    by_process = {process.process_id: process for process in schemas.values()}
    if schema_out:
        schema_out.mkdir(parents=True, exist_ok=True)
        for name, process in schemas.items():
            process.save(schema_out / f"{name}.yaml")
        typer.echo(f"wrote {len(schemas)} process schemas to {schema_out}")
    try:
        _write(iter_sgd_cases(files, limit_dialogues=limit_dialogues), _Tally(by_process), out, None)
    except TraceError as error:
        raise _fail(error) from error


@import_app.command("abcd")
def import_abcd(
    out: OutOption,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir", help="ABCD folder (kb, ontology, guidelines, abcd_sample); default: datasets_dir/abcd."
        ),
    ] = None,
    schema_out: SchemaOutOption = None,
    sequences_out: Annotated[
        Path | None,
        typer.Option("--sequences-out", help="Also write each subflow's required button sequence here (JSON)."),
    ] = None,
) -> None:
    """Import the ABCD guidelines as a process schema and its sample conversations as cases."""
    from selective_autonomy.config import load_settings
    from selective_autonomy.traces.abcd import abcd_intent_sequences, abcd_process_schema, iter_abcd_sample_cases
    from selective_autonomy.traces.datasets import abcd_data_dir

    try:
        data_dir = data_dir or abcd_data_dir(load_settings().datasets_dir)
        process = abcd_process_schema(data_dir)
        sequences = abcd_intent_sequences(data_dir)
    except (TraceError, FileNotFoundError) as error:
        raise _fail(error) from error
    if schema_out:
        process.save(schema_out)
        typer.echo(f"wrote {schema_out}: {len(process.actions)} actions, {len(process.fields)} fields")
    if sequences_out:
        payload = {name: sequence.model_dump(mode="json") for name, sequence in sequences.items()}
        sequences_out.write_text(json.dumps(payload, indent=1))
        typer.echo(f"wrote {sequences_out}: {len(sequences)} subflow sequences")
    _write(iter_abcd_sample_cases(data_dir, process), _Tally({process.process_id: process}), out, None)


def _split_name(source: Path, part: str) -> str:
    name = source.name
    for suffix in (".jsonl.gz", ".jsonl", ".gz"):
        if name.endswith(suffix):
            return f"{name.removesuffix(suffix)}.{part}{suffix}"
    return f"{name}.{part}.jsonl"


@import_app.command("split")
def split(
    cases: Annotated[Path, typer.Argument(help="JSONL cases to split.", exists=True, dir_okay=False)],
    out_dir: Annotated[Path, typer.Option("--out-dir", help="Folder for the parts: <name>.<part>.jsonl[.gz].")],
    fractions: Annotated[
        str, typer.Option("--fractions", help="Comma-separated shares of cases per part, summing to 1.")
    ] = "0.6,0.2,0.2",
    names: Annotated[str, typer.Option("--names", help="Comma-separated part names, one per fraction.")] = (
        "train,val,test"
    ),
) -> None:
    """Split cases chronologically by their first event: earlier cases train, later ones evaluate."""
    from selective_autonomy.traces.split import chronological_split

    parts = [name.strip() for name in names.split(",")]
    try:
        shares = [float(share) for share in fractions.split(",")]
    except ValueError as error:
        raise _fail(ValueError(f"--fractions must be numbers: {fractions!r}")) from error
    if len(parts) != len(shares):
        raise _fail(ValueError(f"{len(shares)} fractions but {len(parts)} names"))
    try:
        pieces = chronological_split(read_cases(cases), shares)
    except TraceError as error:
        raise _fail(error) from error
    out_dir.mkdir(parents=True, exist_ok=True)
    for part, piece in zip(parts, pieces, strict=True):
        target = out_dir / _split_name(cases, part)
        write_cases(target, piece)
        span = f"{piece[0].started_at.isoformat()} .. {piece[-1].started_at.isoformat()}" if piece else "empty"
        typer.echo(f"wrote {target}: cases={len(piece)} steps={sum(len(c.steps) for c in piece)} started {span}")
