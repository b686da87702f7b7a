"""Read XES and CSV event logs into one normalised frame (:class:`EventTable`): fixed column names,
UTC times, typed attributes, rows grouped by case and sorted by time.

XES is read with rustxes (fast, handles ``.xes.gz``); CSV with polars. An XES log needs no mapping
file: its standard keys give one (:mod:`selective_autonomy.traces.xes_mapping`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import polars as pl
import rustxes

from selective_autonomy.schemas.identifiers import NAME_PATTERN, is_name
from selective_autonomy.schemas.process import ValueType
from selective_autonomy.traces.errors import MappingError, SourceFormatError
from selective_autonomy.traces.mapping import AttributeMapping, EventLogMapping
from selective_autonomy.traces.xes_mapping import default_xes_mapping, process_id_from_path

XES_TIMEZONE = "UTC"
"""Zone of the naive timestamps rustxes returns: it converts every XES time to UTC."""

COL_CASE, COL_ACTIVITY, COL_TIME, COL_RESOURCE, COL_CLUSTER, COL_ROW, COL_ORDER = (
    "__case",
    "__activity",
    "__ts",
    "__resource",
    "__cluster",
    "__row",
    "__order",
)


@dataclass(frozen=True)
class EventTable:
    """A log normalised for import: fixed column names, UTC times, typed attributes, sorted.

    Rows are grouped by case (cases in the order they first appear in the log) and sorted by time
    within a case; ties keep the log's order.
    """

    frame: pl.DataFrame
    mapping: EventLogMapping
    field_types: dict[str, ValueType]
    case_fields: tuple[str, ...]
    event_fields: tuple[str, ...]
    dropped_events: int
    log_end: datetime | None = None
    """The last event time of the whole log (before ``limit_cases``): when it was extracted."""

    @property
    def has_resource(self) -> bool:
        return self.mapping.resource is not None

    @property
    def n_cases(self) -> int:
        return int(self.frame[COL_CASE].n_unique())

    @property
    def n_events(self) -> int:
        return self.frame.height


def read_xes(path: Path | str) -> pl.DataFrame:
    """Read an XES log (``.xes`` or ``.xes.gz``) into one row per event.

    rustxes prefixes trace attributes with ``case:`` and returns timestamps converted to UTC
    without a zone, which :func:`normalize_events` re-attaches.
    """
    try:
        frame, _metadata = rustxes.import_xes(str(path))
    except Exception as error:  # rustxes raises plain exceptions for unreadable files
        raise SourceFormatError(f"{path}: not a readable XES log: {error}") from error
    if not isinstance(frame, pl.DataFrame):
        raise SourceFormatError(f"{path}: rustxes returned {type(frame).__name__}, expected a polars DataFrame")
    return frame


def read_csv(path: Path | str, mapping: EventLogMapping) -> pl.DataFrame:
    """Read a CSV event log (one event per row) with the mapping's separator."""
    try:
        return pl.read_csv(path, separator=mapping.csv_separator, infer_schema_length=10_000)
    except (pl.exceptions.PolarsError, OSError) as error:
        raise SourceFormatError(f"{path}: not a readable CSV event log: {error}") from error


def is_xes(path: Path | str) -> bool:
    return Path(path).name.lower().endswith((".xes", ".xes.gz"))


def read_event_log(
    path: Path | str, mapping: EventLogMapping | None = None, *, limit_cases: int | None = None
) -> EventTable:
    """Read and normalise an XES (by extension ``.xes``/``.xes.gz``) or CSV log.

    :param mapping: how to read the log; None (the default) reads an XES log with the mapping of its
        standard keys (:func:`~selective_autonomy.traces.xes_mapping.default_xes_mapping`). A CSV log
        has no standard column names, so it needs one.
    """
    if is_xes(path):
        raw = read_xes(path)
        if mapping is None:
            mapping = default_xes_mapping(raw, process_id_from_path(path), source=Path(path).name).mapping
        return normalize_events(raw, mapping, limit_cases=limit_cases, naive_timezone=XES_TIMEZONE)
    if mapping is None:
        raise MappingError(f"{path}: a CSV log has no standard column names; give a mapping file")
    return normalize_events(read_csv(path, mapping), mapping, limit_cases=limit_cases)


def _require_columns(raw: pl.DataFrame, mapping: EventLogMapping) -> None:
    wanted = [mapping.case_id, *mapping.activity_columns, mapping.timestamp]
    wanted += [c for c in (mapping.resource, mapping.lifecycle, mapping.business_cluster_column) if c]
    wanted += [a.column for a in mapping.attributes]
    missing = [c for c in wanted if c not in raw.columns]
    if missing:
        raise MappingError(f"columns {missing} are not in the log; it has {raw.columns}")


def _utc_timestamps(series: pl.Series, fmt: str | None, timezone: str) -> pl.Series:
    """Parse a time column to UTC; values without an offset are taken to be in ``timezone``.

    Strings are parsed eagerly (on the series) so polars can tell from the data whether they carry
    offsets.
    """
    if series.dtype == pl.String:
        series = series.str.to_datetime(format=fmt, strict=True)
    elif series.dtype == pl.Date:
        series = series.cast(pl.Datetime("us"))
    dtype = series.dtype
    if not isinstance(dtype, pl.Datetime):
        raise MappingError(f"time column {series.name!r} has type {dtype}, expected a date, datetime or string")
    if dtype.time_zone is None:
        series = series.dt.replace_time_zone(timezone)
    return series.dt.convert_time_zone("UTC")


def _infer_type(series: pl.Series) -> ValueType:
    dtype = series.dtype
    if dtype == pl.Boolean:
        return ValueType.boolean
    if dtype.is_integer():
        return ValueType.integer
    if dtype.is_float():
        return ValueType.number
    if isinstance(dtype, pl.Datetime) or dtype == pl.Date:
        return ValueType.datetime
    present = series.drop_nulls()
    if dtype != pl.String or not present.len():
        return ValueType.string
    if present.cast(pl.Int64, strict=False).null_count() == 0:
        return ValueType.integer
    if present.cast(pl.Float64, strict=False).null_count() == 0:
        return ValueType.number
    if present.str.to_lowercase().is_in(["true", "false"]).all():
        return ValueType.boolean
    try:
        present.str.to_datetime(strict=True)
    except pl.exceptions.PolarsError:
        return ValueType.string
    return ValueType.datetime


def _activity_series(frame: pl.DataFrame, mapping: EventLogMapping) -> pl.Series:
    """The activity column, or the values of a composite activity joined with its separator.

    An empty (or blank) or missing part is left out (a UI "scroll" event has no target, so it is just "scroll");
    an event with no part at all has no activity, and is dropped like one without a timestamp.
    """
    columns = mapping.activity_columns
    if len(columns) == 1:
        return frame[columns[0]].cast(pl.String)
    texts = [pl.col(c).cast(pl.String) for c in columns]
    parts = [pl.when(text.str.strip_chars() != "").then(text) for text in texts]
    joined = pl.concat_str(parts, separator=mapping.activity_separator, ignore_nulls=True)
    return frame.select(pl.when(joined != "").then(joined)).to_series()


def _check_activity_names(activities: pl.Series) -> None:
    """Refuse activities that cannot be action types, naming a few, before any case is built."""
    bad = [a for a in activities.unique(maintain_order=True).to_list() if not is_name(a)]
    if bad:
        raise MappingError(
            f"{len(bad)} activit{'y' if len(bad) == 1 else 'ies'} cannot be action types (pattern {NAME_PATTERN}: "
            f"no '/', '\\' or control character, no leading space or dot, at most 128 characters), e.g. "
            f"{bad[:3]}; map the activity to other columns, or clean these values"
        )


def _attribute_series(frame: pl.DataFrame, attribute: AttributeMapping, timezone: str) -> tuple[pl.Series, ValueType]:
    """A column cast to the Python type its field holds; datetimes become ISO strings (fields are scalars)."""
    column = frame[attribute.column]
    kind = attribute.type or _infer_type(column)
    if kind is ValueType.integer:
        values = column.cast(pl.Int64, strict=True)
    elif kind is ValueType.number:
        values = column.cast(pl.Float64, strict=True)
    elif kind is ValueType.boolean:
        truth = {"true": True, "false": False}
        values = column.cast(pl.String).str.to_lowercase().replace_strict(truth, default=None, return_dtype=pl.Boolean)
    elif kind is ValueType.datetime:
        values = _utc_timestamps(column, None, timezone).dt.strftime("%Y-%m-%dT%H:%M:%S%.f%:z")
    else:
        values = column.cast(pl.String)
    return values.alias(attribute.field_name), kind


def normalize_events(
    raw: pl.DataFrame,
    mapping: EventLogMapping,
    *,
    limit_cases: int | None = None,
    naive_timezone: str | None = None,
) -> EventTable:
    """Rename, type, filter and sort a raw event frame as the mapping says.

    :param limit_cases: keep only the first N cases in log order (default: all); for quick slices.
    :param naive_timezone: zone of timestamps without an offset (default: the mapping's ``timezone``).
    """
    _require_columns(raw, mapping)
    timezone = naive_timezone or mapping.timezone
    frame = raw.with_row_index(COL_ROW)
    if mapping.lifecycle:
        keep = mapping.keep_transitions
        frame = frame.filter(pl.col(mapping.lifecycle).cast(pl.String).str.to_lowercase().is_in(keep))
    log_end = _log_end(frame, mapping, timezone)
    if limit_cases is not None:
        first = frame[mapping.case_id].cast(pl.String).unique(maintain_order=True).head(limit_cases)
        frame = frame.filter(pl.col(mapping.case_id).cast(pl.String).is_in(first.implode()))
    height = frame.height
    try:
        attributes = [_attribute_series(frame, a, timezone) for a in mapping.attributes]
        resource = (
            frame[mapping.resource].cast(pl.String) if mapping.resource else pl.Series([None] * height, dtype=pl.String)
        )
        cluster = (
            frame[mapping.business_cluster_column].cast(pl.String)
            if mapping.business_cluster_column
            else pl.Series([mapping.business_cluster] * height, dtype=pl.String)
        )
        normal = pl.DataFrame(
            [
                frame[mapping.case_id].cast(pl.String).alias(COL_CASE),
                _activity_series(frame, mapping).alias(COL_ACTIVITY),
                _utc_timestamps(frame[mapping.timestamp], mapping.timestamp_format, timezone).alias(COL_TIME),
                resource.alias(COL_RESOURCE),
                cluster.alias(COL_CLUSTER),
                frame[COL_ROW],
                *(values for values, _kind in attributes),
            ]
        )
    except pl.exceptions.PolarsError as error:
        raise MappingError(f"the log does not fit mapping {mapping.process_id!r}: {error}") from error
    before = normal.height
    normal = normal.drop_nulls([COL_CASE, COL_ACTIVITY, COL_TIME])
    _check_activity_names(normal[COL_ACTIVITY])
    normal = normal.with_columns(pl.col(COL_ROW).min().over(COL_CASE).alias(COL_ORDER)).sort(
        [COL_ORDER, COL_TIME, COL_ROW]
    )
    types = {a.field_name: kind for a, (_values, kind) in zip(mapping.attributes, attributes, strict=True)}
    return EventTable(
        frame=normal.drop(COL_ORDER),
        mapping=mapping,
        field_types=types,
        case_fields=tuple(a.field_name for a in mapping.case_attributes),
        event_fields=tuple(a.field_name for a in mapping.event_attributes),
        dropped_events=before - normal.height,
        log_end=log_end,
    )


def _log_end(frame: pl.DataFrame, mapping: EventLogMapping, timezone: str) -> datetime | None:
    try:
        end = _utc_timestamps(frame[mapping.timestamp], mapping.timestamp_format, timezone).max()
    except pl.exceptions.PolarsError as error:
        raise MappingError(f"the log does not fit mapping {mapping.process_id!r}: {error}") from error
    return end if isinstance(end, datetime) else None
