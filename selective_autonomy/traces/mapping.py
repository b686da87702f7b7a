"""Mapping files: which columns of an event log mean what.

Event logs name their columns differently (XES standard keys, CSV exports with their own headers),
and some columns must never reach the model (a trace's variant encodes its whole future). A mapping
file states the meaning of each column once, in YAML, so the importer itself stays generic.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from selective_autonomy.schemas.event_parts import ActionTier
from selective_autonomy.schemas.identifiers import is_name
from selective_autonomy.schemas.process import ValueType
from selective_autonomy.traces.errors import MappingError

RESOURCE_FIELD = "resource"
"""Name of the state field holding the previous event's resource (the operator who acted last)."""

BUILTIN_MAPPINGS = ("helpdesk", "bpi2012w", "csv_example", "ui_log_example")


class AttributeMapping(BaseModel):
    """One log column that becomes a field of the screen.

    In YAML an attribute is either a bare column name or ``{column, name, type}``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    column: str = Field(min_length=1, description="Column in the log (XES case attributes carry a 'case:' prefix).")
    name: str | None = Field(default=None, description="Field name; defaults to the column without 'case:'.")
    type: ValueType | None = Field(default=None, description="Force a type; else it is inferred from the values.")

    @model_validator(mode="before")
    @classmethod
    def _from_bare_column(cls, data: Any) -> Any:
        return {"column": data} if isinstance(data, str) else data

    @property
    def field_name(self) -> str:
        if self.name:
            return self.name
        bare = self.column.removeprefix("case:")
        return bare.replace(":", "_")


class EventLogMapping(BaseModel):
    """How to read one event log into cases and derive its process schema."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    process_id: str = Field(min_length=1)
    description: str = ""
    case_id: str = Field(default="case:concept:name", description="Column identifying the case.")
    activity: str | list[str] = Field(
        default="concept:name",
        description="Column naming the activity (the action taken), or several columns whose values joined with "
        "activity_separator name it: UI logs name an action by its event type and target, e.g. "
        "[eventType, target.name] gives 'click | Submit'.",
    )
    activity_separator: str = Field(
        default=" | ",
        min_length=1,
        description="Joins the values of a composite activity; an empty or missing part is left out.",
    )
    timestamp: str = Field(default="time:timestamp", description="Column with the event's time.")
    resource: str | None = Field(default="org:resource", description="Column naming the operator, if any.")
    lifecycle: str | None = Field(default=None, description="Lifecycle column; events are filtered on it.")
    keep_transitions: list[str] = Field(
        default_factory=lambda: ["complete"],
        description="Lifecycle transitions kept (case-insensitive): an action counts once, when it completes.",
    )
    case_attributes: list[AttributeMapping] = Field(default_factory=list)
    event_attributes: list[AttributeMapping] = Field(
        default_factory=list, description="Shown in the state only once an earlier event has set them."
    )
    business_cluster_column: str | None = Field(default=None, description="Case-level column giving the cluster.")
    business_cluster: str = Field(default="default", description="Cluster of every case when no column is given.")
    pii: list[str] = Field(default_factory=list, description="Field names (or their columns) holding personal data.")
    default_tier: ActionTier = ActionTier.critical
    tiers: dict[str, ActionTier] = Field(default_factory=dict, description="Tier per activity, overriding the default.")
    max_enum_values: int = Field(default=50, ge=1, description="Strings with at most this many values become enums.")
    timestamp_format: str | None = Field(default=None, description="strftime format of CSV timestamps; else inferred.")
    timezone: str = Field(default="UTC", description="Zone of timestamps that carry no offset.")
    csv_separator: str = Field(default=",", min_length=1, max_length=1)
    open_case_quantile: float | None = Field(
        default=0.95,
        gt=0.0,
        le=1.0,
        description="A case whose last event is closer to the end of the log than this quantile of the gaps "
        "between consecutive events of a case may still have been open when the log was extracted: it gets "
        "no close_chat step. None: every case ended.",
    )

    @field_validator("activity")
    @classmethod
    def _activity_columns(cls, value: str | list[str]) -> str | list[str]:
        columns = [value] if isinstance(value, str) else value
        if not columns or any(not column for column in columns):
            raise ValueError("activity needs at least one column, and no empty column name")
        if len(set(columns)) != len(columns):
            raise ValueError(f"activity names a column twice: {columns}")
        return value

    @field_validator("activity_separator")
    @classmethod
    def _separator_fits_a_name(cls, value: str) -> str:
        # The joined value becomes an action type, which may not hold '/', '\\' or control characters.
        if not is_name(f"a{value}b"):
            raise ValueError(f"activity_separator {value!r} would make invalid action names ('/', '\\', control)")
        return value

    @field_validator("keep_transitions")
    @classmethod
    def _lowercase(cls, values: list[str]) -> list[str]:
        return [value.lower() for value in values]

    @model_validator(mode="after")
    def _field_names_are_unique(self) -> Self:
        names = [a.field_name for a in (*self.case_attributes, *self.event_attributes)]
        if self.resource is not None:
            names.append(RESOURCE_FIELD)
        seen: set[str] = set()
        for name in names:
            if name in seen:
                raise ValueError(f"field {name!r} is mapped twice (the resource column is always the field 'resource')")
            if name.startswith("__"):
                raise ValueError(f"field {name!r}: names starting with '__' are reserved for the importer")
            seen.add(name)
        return self

    @property
    def activity_columns(self) -> tuple[str, ...]:
        """The column(s) naming the activity, in the order their values are joined."""
        return (self.activity,) if isinstance(self.activity, str) else tuple(self.activity)

    @property
    def attributes(self) -> list[AttributeMapping]:
        return [*self.case_attributes, *self.event_attributes]

    def is_pii(self, attribute: AttributeMapping | str) -> bool:
        if isinstance(attribute, str):
            return attribute in self.pii
        return attribute.field_name in self.pii or attribute.column in self.pii

    def to_yaml(self) -> str:
        """The mapping as YAML that :meth:`from_yaml` reads back to an equal mapping; every key is
        written (defaults too), so a saved mapping shows each setting there is to edit."""
        data = self.model_dump(mode="json")
        for key in ("case_attributes", "event_attributes"):
            data[key] = [_compact(attribute) for attribute in data[key]]
        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=120)

    @classmethod
    def from_yaml(cls, text: str, source: str = "<mapping>") -> EventLogMapping:
        try:
            return cls.model_validate(yaml.safe_load(text))
        except (ValidationError, yaml.YAMLError) as error:
            raise MappingError(f"{source}: invalid event-log mapping: {error}") from error


def _compact(attribute: dict[str, Any]) -> str | dict[str, Any]:
    """An attribute as a bare column name when it sets nothing else, as mapping files write it."""
    rest = {key: value for key, value in attribute.items() if value is not None}
    return rest["column"] if rest.keys() == {"column"} else rest


def load_mapping(name_or_path: str | Path) -> EventLogMapping:
    """Load a mapping from a YAML file, or one shipped with the package by name (e.g. ``helpdesk``)."""
    path = Path(name_or_path)
    if path.is_file():
        return EventLogMapping.from_yaml(path.read_text(), source=str(path))
    name = str(name_or_path)
    if name in BUILTIN_MAPPINGS:
        text = resources.files("selective_autonomy.traces").joinpath("mappings", f"{name}.yaml").read_text()
        return EventLogMapping.from_yaml(text, source=f"builtin mapping {name!r}")
    raise MappingError(f"no mapping file {name_or_path!r}; built-in mappings are {', '.join(BUILTIN_MAPPINGS)}")
