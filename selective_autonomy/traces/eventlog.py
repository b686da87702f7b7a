"""Import XES and CSV event logs into cases, and derive a process schema from the log itself.

Real process logs (Helpdesk, BPI 2012) are the closest public stand-in for operator traces: each
event is an operator completing an activity. The importer turns every event into a step whose
action is the activity, and builds the state before it from earlier events only, so a policy
trained on the steps learns to predict the next activity without seeing it. A final ``close_chat``
step ends every case that ended, so a policy also learns when a case is finished. A case whose last
event is too close to the end of the log may still have been open when the log was extracted (it
was cut off, not closed): it gets no ``close_chat``, because that label would be invented. On BPI
2012 about a fifth of the cases of the last 30% are cut off this way, and judging the policy's
"continue" proposal against an invented close made the log's end look like drift
(docs/guarantee.md).

Reading a log into the normalised frame (:class:`EventTable`) is :mod:`selective_autonomy.traces.event_table`
(its reading functions are importable from here too); this module builds cases and the schema from it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import polars as pl

from selective_autonomy.schemas.event_parts import Action, Scalar, UIState
from selective_autonomy.schemas.process import (
    ActionSpec,
    BusinessCluster,
    ProcessSchema,
    UIField,
    ValueType,
    default_chat_actions,
)
from selective_autonomy.traces.errors import MappingError
from selective_autonomy.traces.event_table import (
    COL_ACTIVITY,
    COL_CASE,
    COL_CLUSTER,
    COL_RESOURCE,
    COL_TIME,
    XES_TIMEZONE,
    EventTable,
    normalize_events,
    read_event_log,
    read_xes,
)
from selective_autonomy.traces.format import Case, TraceStep
from selective_autonomy.traces.mapping import RESOURCE_FIELD

# The reading side is imported from here by the importers, the CLI and the benchmarks.
__all__ = [
    "END_ACTION",
    "RECENT_ACTIONS",
    "XES_TIMEZONE",
    "EventTable",
    "derive_process_schema",
    "iter_cases",
    "normalize_events",
    "open_case_horizon",
    "read_event_log",
    "read_xes",
]

RECENT_ACTIONS = 20
"""How many previous actions a state shows; older ones are dropped to bound the state's size."""

END_ACTION = "close_chat"
"""The action appended at the end of every case: the 'case ends here' prediction target."""


def _build_case(
    table: EventTable, rows: dict[str, list[Any]], start: int, stop: int, actions: dict[str, Action], *, ended: bool
) -> Case:
    """One case from rows ``start:stop`` of the sorted table; every state uses earlier rows only."""
    times: list[datetime] = rows[COL_TIME]
    case_values: dict[str, Scalar] = {name: rows[name][start] for name in table.case_fields}
    latest: dict[str, Scalar] = dict.fromkeys(table.event_fields)
    previous_resource: str | None = None
    recent: list[Action] = []
    steps: list[TraceStep] = []

    def state() -> UIState:
        fields = {**case_values, **latest}
        if table.has_resource:
            fields[RESOURCE_FIELD] = previous_resource
        return UIState(fields=fields, recent_actions=recent[-RECENT_ACTIONS:], case_started_at=times[start])

    for row in range(start, stop):
        action = actions.setdefault(rows[COL_ACTIVITY][row], Action(action_type=rows[COL_ACTIVITY][row]))
        resource: str | None = rows[COL_RESOURCE][row]
        steps.append(TraceStep(state=state(), action=action, operator_id=resource, timestamp=times[row]))
        for name in table.event_fields:
            if rows[name][row] is not None:
                latest[name] = rows[name][row]
        previous_resource = resource
        recent.append(action)
    if ended:
        end = actions.setdefault(END_ACTION, Action(action_type=END_ACTION))
        steps.append(TraceStep(state=state(), action=end, operator_id=None, timestamp=times[stop - 1]))
    return Case(
        case_id=rows[COL_CASE][start],
        process_id=table.mapping.process_id,
        business_cluster=rows[COL_CLUSTER][start] or table.mapping.business_cluster,
        started_at=times[start],
        attributes=case_values,
        steps=steps,
        ended=ended,
    )


def open_case_horizon(table: EventTable) -> tuple[datetime, timedelta] | None:
    """The log's last event time and how close to it a case's last event must be for the case to
    count as possibly still open (the mapping's quantile of within-case gaps); None: never."""
    quantile = table.mapping.open_case_quantile
    if quantile is None or table.log_end is None:
        return None
    gaps = table.frame.select(pl.col(COL_TIME).diff().over(COL_CASE).alias("gap"))["gap"].drop_nulls()
    if gaps.len() == 0:
        return None
    microseconds = gaps.dt.total_microseconds().quantile(quantile, interpolation="linear")
    return table.log_end, timedelta(microseconds=float(microseconds or 0.0))


def iter_cases(table: EventTable) -> Iterator[Case]:
    """Yield one :class:`Case` per case of the table, in log order; every case that ended (see
    :func:`open_case_horizon`) ends with ``close_chat``."""
    names = [COL_CASE, COL_ACTIVITY, COL_TIME, COL_RESOURCE, COL_CLUSTER, *table.case_fields, *table.event_fields]
    rows = {name: table.frame[name].to_list() for name in names}
    actions: dict[str, Action] = {}
    horizon = open_case_horizon(table)
    case_ids = rows[COL_CASE]
    times: list[datetime] = rows[COL_TIME]
    start = 0
    for row in range(1, len(case_ids) + 1):
        if row == len(case_ids) or case_ids[row] != case_ids[start]:
            ended = horizon is None or horizon[0] - times[row - 1] >= horizon[1]
            yield _build_case(table, rows, start, row, actions, ended=ended)
            start = row


def _field_spec(name: str, kind: ValueType, values: pl.Series, max_enum: int, pii: bool, why: str) -> UIField:
    if kind is ValueType.string:
        distinct = values.drop_nulls().unique().sort()
        if 0 < distinct.len() <= max_enum:
            return UIField(name=name, type=ValueType.enum, enum=distinct.to_list(), pii=pii, description=why)
    return UIField(name=name, type=kind, pii=pii, description=why)


def derive_process_schema(table: EventTable) -> ProcessSchema:
    """The process schema implied by a log: its activities as controls, its attributes as fields.

    Numeric attributes become number/integer fields, strings with at most ``max_enum_values``
    distinct values become enums (so the view can offer a choice), others plain strings.
    Controls are sorted by name so that action indices do not depend on the order of the log.
    """
    mapping = table.mapping
    frame = table.frame
    activities = sorted(frame[COL_ACTIVITY].unique().to_list())
    reserved = {spec.name for spec in default_chat_actions()}
    clashing = reserved.intersection(activities)
    if clashing:
        raise MappingError(f"activities {sorted(clashing)} clash with the chat actions of every process schema")
    controls = [
        ActionSpec(name=name, tier=mapping.tiers.get(name, mapping.default_tier), description="Activity of the log.")
        for name in activities
    ]
    fields = []
    for attribute in mapping.attributes:
        name = attribute.field_name
        where = "case attribute" if attribute in mapping.case_attributes else "latest value set by an earlier event"
        why = f"{where} (log column {attribute.column!r})"
        kind = table.field_types[name]
        fields.append(_field_spec(name, kind, frame[name], mapping.max_enum_values, mapping.is_pii(attribute), why))
    if table.has_resource:
        why = f"resource of the previous event (log column {mapping.resource!r}); empty before the first"
        resource_pii = mapping.is_pii(RESOURCE_FIELD) or mapping.is_pii(str(mapping.resource))
        fields.append(
            _field_spec(
                RESOURCE_FIELD, ValueType.string, frame[COL_RESOURCE], mapping.max_enum_values, resource_pii, why
            )
        )
    clusters = sorted(frame[COL_CLUSTER].drop_nulls().unique().to_list()) or [mapping.business_cluster]
    return ProcessSchema(
        process_id=mapping.process_id,
        description=mapping.description,
        business_clusters=[BusinessCluster(id=cluster) for cluster in clusters],
        fields=fields,
        controls=controls,
    )
