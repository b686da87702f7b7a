"""The default mapping of an XES log, built from its standard keys, so an import needs no mapping file.

XES names what a mapping needs most with standard extension keys: ``concept:name`` names a trace
(the case id: rustxes flattens trace attributes to ``case:...``) and an event's activity,
``time:timestamp`` its time, ``org:resource`` who did it, ``lifecycle:transition`` which step of the
activity's life it records. :func:`default_xes_mapping` maps those, and offers every other trace
attribute as a case attribute (a field known from the case's first step on) unless it:

- encodes the future. A trace attribute is stored once per trace, with the value it had when the
  log was exported, i.e. when the case had ended; the state before each step must hold only what
  was known then (the importer's no-leakage rule). Excluded by name: a variant or variant index
  (Disco and ProM name the trace's whole activity sequence with it: every label at once), an
  outcome or label (predictive-monitoring logs label each case with how it ended), anything about
  the end (end time, closure, completion, final values), whole-case measures (duration,
  throughput, lead or cycle time, number of events) and a status (the status at export time).
  Matching names is coarse on purpose: a wrongly excluded column is listed, with its reason, in the
  printed mapping (``--print-mapping``) and is put back with one line, while a wrongly kept one
  silently inflates every metric.
- carries nothing: empty in every trace, or the same value in every trace (an export tool's name).

Event attributes other than the standard keys are not mapped (Disco, for one, duplicates activity
and resource as ``Activity`` and ``Resource``); the printed mapping lists them, to be added as
``event_attributes`` (the latest value an earlier event set).

Lifecycle: when some events are ``complete``, only those are kept, so an activity recorded with a
``start`` and a ``complete`` event is one action, taken when it completes (as the built-in
mappings do). When no event is ``complete`` (a log of atomic events recorded at ``start``, say),
every event is kept: filtering would leave nothing.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from selective_autonomy.schemas.identifiers import is_name
from selective_autonomy.traces.errors import MappingError
from selective_autonomy.traces.mapping import RESOURCE_FIELD, AttributeMapping, EventLogMapping

CASE_ID, ACTIVITY, TIMESTAMP = "case:concept:name", "concept:name", "time:timestamp"
RESOURCE, LIFECYCLE = "org:resource", "lifecycle:transition"
COMPLETE = "complete"
TRACE_PREFIX = "case:"

_FUTURE_WORDS: tuple[tuple[frozenset[str], str], ...] = (
    (frozenset({"variant"}), "names the trace's variant, its whole activity sequence: the future of every step"),
    (
        frozenset({"outcome", "label", "result", "resolution", "verdict"}),
        "a case outcome, known only once the case ended",
    ),
    (
        frozenset({"end", "ended", "ending", "closed", "closure", "finished", "completed", "completion", "final"}),
        "describes the case's end",
    ),
    (
        frozenset({"duration", "throughput", "leadtime", "cycletime", "length", "numevents", "eventcount"}),
        "measured over the whole case, up to its end",
    ),
    (frozenset({"status"}), "the case's status when the log was exported, i.e. after it ended"),
)
_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")


def future_encoding_reason(column: str) -> str | None:
    """Why a trace attribute encodes the case's future, judged by its name; None when it seems not to.

    Names are split into words at separators and camel case ("EndDate" -> end, date), and adjacent
    words are also read joined ("lead_time" -> leadtime).
    """
    words = [word.lower() for word in _WORD.findall(column.removeprefix(TRACE_PREFIX))]
    candidates = {*words, *(a + b for a, b in itertools.pairwise(words))}
    for vocabulary, reason in _FUTURE_WORDS:
        if candidates & vocabulary:
            return reason
    return None


def process_id_from_path(path: Path | str) -> str:
    """A process id from a log's file name: ``Helpdesk.xes.gz`` -> ``helpdesk``."""
    name = Path(path).name.lower()
    for suffix in (".xes.gz", ".xes", ".csv.gz", ".csv", ".gz"):
        if name.endswith(suffix):
            name = name.removesuffix(suffix)
            break
    slug = re.sub(r"[^a-z0-9._-]+", "_", name).lstrip("._-")[:128]
    return slug or "eventlog"


@dataclass(frozen=True)
class DefaultMapping:
    """A mapping inferred from a log, with what it left out and why, to show the user."""

    mapping: EventLogMapping
    source: str
    excluded: dict[str, str]
    """Trace attribute column -> why it is not a field."""
    unmapped_event_attributes: tuple[str, ...]
    notes: tuple[str, ...]

    def to_yaml(self) -> str:
        """The mapping as a mapping file, headed by comments that say what was left out and why."""
        lines = [
            f"# Default mapping of {self.source}, from its XES standard keys (selauto import xes).",
            "# Save it, edit it, and import with --mapping FILE.",
            *(f"# {note}" for note in self.notes),
        ]
        if self.excluded:
            lines.append("# Trace attributes not offered as fields (add one to case_attributes to use it):")
            lines += [f"#   {column}: {why}" for column, why in self.excluded.items()]
        if self.unmapped_event_attributes:
            lines.append("# Event attributes not mapped (add one to event_attributes to show the latest value an")
            lines.append("# earlier event set): " + ", ".join(self.unmapped_event_attributes))
        return "\n".join(lines) + "\n" + self.mapping.to_yaml()

    def summary(self) -> str:
        """A few lines for the terminal: the columns used and the ones left out."""
        m = self.mapping
        fields = [a.field_name for a in m.case_attributes] + ([RESOURCE_FIELD] if m.resource else [])
        lines = [
            f"no --mapping: default XES mapping (case {m.case_id}, activity {m.activity}, time {m.timestamp}, "
            f"resource {m.resource or '-'}, lifecycle {m.lifecycle or '-'}); fields: {', '.join(fields) or '-'}",
            *self.notes,
        ]
        if self.excluded:
            lines.append("not offered as fields: " + "; ".join(f"{c} ({why})" for c, why in self.excluded.items()))
        lines.append("--print-mapping prints this mapping to save and edit")
        return "\n".join(lines)


def _field_name(column: str, taken: set[str]) -> str | None:
    """An explicit field name when the default one is invalid or taken; None: the default fits."""
    default = AttributeMapping(column=column).field_name
    if is_name(default) and default not in taken and not default.startswith("__"):
        return None
    base = "case_" + re.sub(r"[^A-Za-z0-9_.-]+", "_", column.removeprefix(TRACE_PREFIX))
    name, n = base[:120], 2
    while name in taken:
        name, n = f"{base[:120]}_{n}", n + 1
    return name


def default_xes_mapping(raw: pl.DataFrame, process_id: str, *, source: str = "the log") -> DefaultMapping:
    """The default mapping of an XES log as rustxes reads it (:func:`eventlog.read_xes`).

    :param process_id: the process id of the imported cases (e.g. :func:`process_id_from_path`).
    :param source: how the comments of the printed mapping name the log (default: "the log").
    :raises MappingError: when the log lacks a required standard key (case id, activity, time).
    """
    missing = [key for key in (CASE_ID, ACTIVITY, TIMESTAMP) if key not in raw.columns]
    if missing:
        raise MappingError(
            f"{source} lacks the XES standard keys {missing} (its columns: {raw.columns}); "
            "write a mapping file naming its columns and pass it with --mapping"
        )
    notes: list[str] = []
    lifecycle = LIFECYCLE if LIFECYCLE in raw.columns else None
    if lifecycle is not None:
        transitions = raw[lifecycle].cast(pl.String).str.to_lowercase()
        if not transitions.eq(COMPLETE).any():
            notes.append(f"No event is {COMPLETE!r} in {LIFECYCLE}: every event is kept.")
            lifecycle = None
    resource = RESOURCE if RESOURCE in raw.columns else None
    excluded: dict[str, str] = {}
    attributes: list[AttributeMapping] = []
    taken = {RESOURCE_FIELD} if resource else set()
    for column in sorted(c for c in raw.columns if c.startswith(TRACE_PREFIX) and c != CASE_ID):
        values = raw[column]
        present = values.drop_nulls()
        reason = future_encoding_reason(column)
        if reason is None and present.len() == 0:
            reason = "empty in every trace"
        elif reason is None and values.null_count() == 0 and present.n_unique() == 1:
            reason = f"the same value ({present[0]!r}) in every trace"
        if reason is not None:
            excluded[column] = reason
            continue
        attribute = AttributeMapping(column=column, name=_field_name(column, taken))
        taken.add(attribute.field_name)
        attributes.append(attribute)
    standard = {CASE_ID, ACTIVITY, TIMESTAMP, RESOURCE, LIFECYCLE}
    unmapped = tuple(sorted(c for c in raw.columns if not c.startswith(TRACE_PREFIX) and c not in standard))
    mapping = EventLogMapping(
        process_id=process_id,
        description=f"Imported from {source} with the default XES mapping.",
        case_id=CASE_ID,
        activity=ACTIVITY,
        timestamp=TIMESTAMP,
        resource=resource,
        lifecycle=lifecycle,
        keep_transitions=[COMPLETE],
        case_attributes=attributes,
    )
    return DefaultMapping(mapping, source, excluded, unmapped, tuple(notes))
