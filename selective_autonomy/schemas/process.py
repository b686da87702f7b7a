"""Process schemas: what a support process's screen holds and which actions it allows.

A process schema is written in YAML, validated by :class:`ProcessSchema`, and exported as JSON
Schema (``selauto schema export``). Everything downstream derives from it: the action grammar that
validates proposals, the schema-driven view, the feature encoding, and the gate's tiers.
"""

from __future__ import annotations

import hashlib
import json
from enum import StrEnum
from pathlib import Path
from typing import Any, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from selective_autonomy.schemas.event_parts import ActionTier
from selective_autonomy.schemas.identifiers import Name, ProcessId


class ValueType(StrEnum):
    string = "string"
    text = "text"
    integer = "integer"
    number = "number"
    boolean = "boolean"
    enum = "enum"
    datetime = "datetime"


class ActionKind(StrEnum):
    control = "control"
    chat = "chat"


class _SchemaModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class UIField(_SchemaModel):
    """One field of the BPM screen."""

    name: Name = Field(description="Field key as it appears in UIState.fields.")
    type: ValueType = ValueType.string
    enum: list[str] | None = Field(default=None, description="Allowed values when type is enum.")
    required: bool = False
    pii: bool = Field(default=False, description="Personal data: masked in every view, log and span.")
    description: str = ""

    @model_validator(mode="after")
    def _enum_has_values(self) -> Self:
        if self.type is ValueType.enum and not self.enum:
            raise ValueError(f"field {self.name!r} is an enum but lists no values")
        return self


class ArgumentSpec(_SchemaModel):
    """One typed argument of an action."""

    name: Name
    type: ValueType = ValueType.string
    enum: list[str] | None = None
    required: bool = True
    pii: bool = False
    description: str = ""

    @model_validator(mode="after")
    def _enum_has_values(self) -> Self:
        if self.type is ValueType.enum and not self.enum:
            raise ValueError(f"argument {self.name!r} is an enum but lists no values")
        return self


class ActionSpec(_SchemaModel):
    """A control (button) or chat action, with the tier that decides if it may run unattended."""

    name: Name = Field(description="The action_type of Action events.")
    kind: ActionKind = ActionKind.control
    tier: ActionTier = Field(
        default=ActionTier.critical,
        description="auto: may run once the gate allows it; critical: only when the critic passes it; "
        "approval_required: irreversible, always deferred to an operator.",
    )
    arguments: list[ArgumentSpec] = Field(default_factory=list)
    description: str = ""


def default_chat_actions() -> list[ActionSpec]:
    return [
        ActionSpec(
            name="send_text",
            kind=ActionKind.chat,
            tier=ActionTier.critical,
            arguments=[ArgumentSpec(name="text", type=ValueType.text)],
            description="Send a chat message to the customer.",
        ),
        ActionSpec(
            name="transfer_chat",
            kind=ActionKind.chat,
            tier=ActionTier.critical,
            arguments=[ArgumentSpec(name="queue", type=ValueType.string)],
            description="Hand the conversation to another queue.",
        ),
        ActionSpec(
            name="close_chat",
            kind=ActionKind.chat,
            tier=ActionTier.critical,
            description="End the session (for event logs: the case ends).",
        ),
    ]


class Guardrails(_SchemaModel):
    """Per-cluster limits that hold whatever the critic says."""

    blocked_actions: list[Name] = Field(default_factory=list, description="Never executed unattended here.")
    max_autonomous_steps: int | None = Field(
        default=None, ge=0, description="Unattended steps allowed in one session before an operator must look."
    )


class BusinessCluster(_SchemaModel):
    id: Name
    description: str = ""
    guardrails: Guardrails = Field(default_factory=Guardrails)


class ProcessSchema(_SchemaModel):
    """A support process: its screen, its clusters and its actions."""

    process_id: ProcessId
    version: int = Field(default=1, ge=1)
    description: str = ""
    business_clusters: list[BusinessCluster] = Field(default_factory=lambda: [BusinessCluster(id="default")])
    fields: list[UIField] = Field(default_factory=list)
    controls: list[ActionSpec] = Field(default_factory=list)
    chat_actions: list[ActionSpec] = Field(default_factory=default_chat_actions)

    @model_validator(mode="after")
    def _names_are_unique(self) -> Self:
        for what, names in (
            ("field", [f.name for f in self.fields]),
            ("action", [a.name for a in self.actions]),
            ("business cluster", [c.id for c in self.business_clusters]),
        ):
            seen: set[str] = set()
            for name in names:
                if name in seen:
                    raise ValueError(f"{what} {name!r} is defined twice")
                seen.add(name)
        if not self.business_clusters:
            raise ValueError("a process needs at least one business cluster")
        return self

    @property
    def actions(self) -> list[ActionSpec]:
        """Controls then chat actions: the order used for action indices everywhere."""
        return [*self.controls, *self.chat_actions]

    @property
    def action_names(self) -> list[str]:
        return [a.name for a in self.actions]

    def action(self, name: str) -> ActionSpec | None:
        for spec in self.actions:
            if spec.name == name:
                return spec
        return None

    def field(self, name: str) -> UIField | None:
        for spec in self.fields:
            if spec.name == name:
                return spec
        return None

    def cluster(self, cluster_id: str) -> BusinessCluster | None:
        for cluster in self.business_clusters:
            if cluster.id == cluster_id:
                return cluster
        return None

    @property
    def pii_fields(self) -> frozenset[str]:
        return frozenset(f.name for f in self.fields if f.pii)

    def schema_hash(self) -> str:
        """Stable hash of the schema's content; model artefacts record it to refuse a mismatch."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    @classmethod
    def from_yaml(cls, text: str) -> ProcessSchema:
        data: Any = yaml.safe_load(text)
        return cls.model_validate(data)

    @classmethod
    def load(cls, path: Path | str) -> ProcessSchema:
        return cls.from_yaml(Path(path).read_text())

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json", exclude_defaults=False), sort_keys=False, allow_unicode=True)

    def save(self, path: Path | str) -> None:
        Path(path).write_text(self.to_yaml())


def process_schema_json_schema() -> dict[str, Any]:
    """JSON Schema of the process-schema YAML format itself (for editors and CI checks)."""
    return ProcessSchema.model_json_schema()
