"""Policy training data: (state event, next action) examples and the three shared benchmark logs.

Every policy learns from and is judged on the same thing: the ``UIStateChanged`` the live system
would have published before a step (:meth:`Case.state_event`) and the action the operator then
took. Building both from cases here keeps training, evaluation and serving on identical inputs.

A log may hold several processes (SGD: one per service, each with its own schema), so a loaded
log is a list of :class:`ProcessCases`; a policy is trained per process and split per process,
because a chronological split over the whole SGD corpus would leave services that only occur late
with no training data at all.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from selective_autonomy.schemas.event_parts import Action
from selective_autonomy.schemas.events import UIStateChanged
from selective_autonomy.schemas.process import ProcessSchema
from selective_autonomy.traces import datasets as shared
from selective_autonomy.traces.errors import TraceError
from selective_autonomy.traces.format import Case
from selective_autonomy.traces.split import chronological_split

BUILTIN_LOGS = ("helpdesk", "bpi2012w", "sgd-dev")
"""Names ``load_log`` resolves in the datasets folder; anything else is a path to an XES/CSV log."""

DEFAULT_FRACTIONS = (0.6, 0.2, 0.2)
"""Train, validation (kept for the critic and thresholds), test."""


@dataclass(frozen=True, slots=True)
class Examples:
    """Parallel lists: ``events[i]`` is the state before ``targets[i]`` was taken."""

    events: list[UIStateChanged]
    targets: list[Action]

    def __len__(self) -> int:
        return len(self.events)


def case_examples(cases: Iterable[Case]) -> Examples:
    """Every step of every case as a (state event, action) pair, in case then step order."""
    events: list[UIStateChanged] = []
    targets: list[Action] = []
    for case in cases:
        for i, step in enumerate(case.steps):
            events.append(case.state_event(i))
            targets.append(step.action)
    return Examples(events=events, targets=targets)


@dataclass(frozen=True, slots=True)
class ProcessCases:
    """The cases of one process with the schema they follow."""

    schema: ProcessSchema
    cases: list[Case]


@dataclass(frozen=True, slots=True)
class ProcessSplit:
    """One process's chronological train / validation / test parts."""

    schema: ProcessSchema
    train: list[Case]
    val: list[Case]
    test: list[Case]


def split_processes(
    processes: Sequence[ProcessCases], fractions: Sequence[float] = DEFAULT_FRACTIONS
) -> list[ProcessSplit]:
    """Split each process on its own timeline; processes with too few cases for a test part are dropped."""
    if len(fractions) != 3:
        raise TraceError(f"need train, validation and test fractions, got {tuple(fractions)}")
    splits = []
    for process in processes:
        train, val, test = chronological_split(process.cases, fractions)
        if train and test:
            splits.append(ProcessSplit(schema=process.schema, train=train, val=val, test=test))
    return splits


def load_event_log(path: Path | str, mapping: str | Path, *, limit_cases: int | None = None) -> ProcessCases:
    """An XES/CSV log read with a mapping (a file or a built-in name), with the schema derived from it."""
    from selective_autonomy.traces.eventlog import derive_process_schema, iter_cases, read_event_log
    from selective_autonomy.traces.mapping import load_mapping

    table = read_event_log(path, load_mapping(mapping), limit_cases=limit_cases)
    return ProcessCases(schema=derive_process_schema(table), cases=list(iter_cases(table)))


def load_sgd_split(split_dir: Path | str, *, limit_dialogues: int | None = None) -> list[ProcessCases]:
    """One :class:`ProcessCases` per SGD service that has cases in the split, with its own schema.

    Services of ``schema.json`` without any dialogue in the split are left out; the order is by
    process id, so results never depend on file order.
    """
    from selective_autonomy.traces.sgd import iter_sgd_cases, load_sgd_schemas, sgd_dialogue_files, sgd_process_id

    folder = Path(split_dir)
    schema_path = next(iter(sorted(folder.glob("schema.json*"))), folder / "schema.json")
    schemas = {sgd_process_id(name): schema for name, schema in load_sgd_schemas(schema_path).items()}
    by_process: dict[str, list[Case]] = defaultdict(list)
    for case in iter_sgd_cases(sgd_dialogue_files(folder), limit_dialogues=limit_dialogues):
        by_process[case.process_id].append(case)
    missing = sorted(set(by_process) - set(schemas))
    if missing:
        raise TraceError(f"{folder}: cases of processes {missing} that {schema_path.name} does not define")
    return [ProcessCases(schema=schemas[pid], cases=by_process[pid]) for pid in sorted(by_process)]


def load_log(
    name_or_path: str, mapping: str | Path | None = None, *, limit: int | None = None, data_dir: Path | None = None
) -> list[ProcessCases]:
    """Resolve a benchmark log name (``helpdesk``, ``bpi2012w``, ``sgd-dev``) or an event-log path.

    :param mapping: mapping file or built-in name; defaults to the log's own name for the built-in
        event logs and is required for a path.
    :param limit: first N cases (event logs) or dialogues (SGD); default all.
    :param data_dir: the datasets folder the names resolve in (``settings.datasets_dir``); default the
        project's ``data/`` (Helpdesk only).
    """
    if name_or_path == "helpdesk":
        return [load_event_log(shared.helpdesk_log_path(data_dir), mapping or "helpdesk", limit_cases=limit)]
    if name_or_path == "bpi2012w":
        return [load_event_log(shared.bpi2012w_log_path(data_dir), mapping or "bpi2012w", limit_cases=limit)]
    if name_or_path == "sgd-dev":
        return load_sgd_split(shared.sgd_dir(data_dir) / "dev", limit_dialogues=limit)
    path = Path(name_or_path)
    if not path.is_file():
        raise TraceError(f"{name_or_path!r} is neither a built-in log ({', '.join(BUILTIN_LOGS)}) nor a file")
    if mapping is None:
        raise TraceError(f"{path}: an event log needs --mapping")
    return [load_event_log(path, mapping, limit_cases=limit)]


def log_label(name_or_path: str) -> str:
    """Short name for result files: the built-in name, or the log file's name without extensions."""
    if name_or_path in BUILTIN_LOGS:
        return name_or_path
    name = Path(name_or_path).name
    return name.split(".", 1)[0] or name
