"""The parts the Avro event records are built from: values, enums and nested records.

Split from :mod:`events` (the top-level records that travel on topics) because these are the
contract's vocabulary: ``Action``, ``UIState`` or ``Stage`` are used on their own far more often
than any one record. Like the records they mirror the ``.avsc`` files in ``avro/`` exactly, and
follow the same evolution rule (see :mod:`events`).
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

from selective_autonomy.schemas.identifiers import Name

Scalar = bool | int | float | str | None
"""A field value or action argument: what the Avro union ``[null, boolean, long, double, string]`` holds."""

CURRENT_SCHEMA_VERSION = 1
"""The version of records that never evolved; an evolved record states its own (its .avsc default)."""


TIME_ZONE_PATTERN = r"([Zz]|[+-][0-9]{2}:[0-9]{2})$"
"""Stated in the JSON Schema of the times that travel in from outside: a time must end in its zone."""


def utc_now() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return uuid.uuid4().hex


class Actor(StrEnum):
    operator = "operator"
    system = "system"
    customer = "customer"


class Speaker(StrEnum):
    customer = "customer"
    operator = "operator"
    bot = "bot"
    system = "system"


class ActionTier(StrEnum):
    auto = "auto"
    critical = "critical"
    approval_required = "approval_required"


class Executor(StrEnum):
    system = "system"
    operator = "operator"


class DeferralReason(StrEnum):
    unspecified = "unspecified"
    copilot_stage = "copilot_stage"
    below_threshold = "below_threshold"
    approval_required = "approval_required"
    guardrail = "guardrail"
    schema_violation = "schema_violation"
    model_unavailable = "model_unavailable"
    execution_failed = "execution_failed"
    exploration = "exploration"  # v2: a session of the exploration holdout; the gate would have executed
    novel_situation = "novel_situation"  # v2: outside what the certificate was earned on
    paused = "paused"  # v2: autonomy paused by hand for this process or cluster


class Stage(StrEnum):
    """Autonomy stage of one process / business cluster."""

    logging = "logging"  # learn the policy from traces; nothing is shown or executed
    copilot = "copilot"  # every step is a suggestion to an operator
    selective = "selective"  # execute what the gate passes, defer the rest


class Verdict(StrEnum):
    accepted = "accepted"
    corrected = "corrected"
    acceptable_alternative = "acceptable_alternative"


class ContractModel(BaseModel):
    """Base of every contract model: strict about unknown fields, immutable once built."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)

    def to_avro(self) -> dict[str, Any]:
        """The dict fastavro writes: enums as their symbols, nested models as dicts."""
        return self.model_dump(mode="python", round_trip=True)

    @classmethod
    def from_avro(cls, record: dict[str, Any]) -> Self:
        return cls.model_validate(record)


NAMED_VALUES: JsonDict = {"additionalProperties": False}
"""JSON Schema of a ``dict[Name, ...]``: pydantic states the key pattern as ``patternProperties``;
without this, a key outside the pattern would look allowed in the OpenAPI documents."""


class Action(ContractModel):
    action_type: Name
    arguments: dict[Name, Scalar] = Field(default_factory=dict, json_schema_extra=NAMED_VALUES)

    def canonical_json(self) -> str:
        """Deterministic text of the action: sorted argument keys, no whitespace."""
        return json.dumps(
            {"action_type": self.action_type, "arguments": self.arguments},
            sort_keys=True,
            separators=(",", ":"),
        )


class RankedAction(ContractModel):
    """A policy candidate as carried in a deferral: the action and the policy's probability."""

    action: Action
    probability: float = Field(ge=0.0, le=1.0)


class ChatTurn(ContractModel):
    speaker: Speaker
    text: str
    at: AwareDatetime | None = Field(default=None, description="With its time zone, like every time.")


class UIState(ContractModel):
    fields: dict[Name, Scalar] = Field(default_factory=dict, json_schema_extra=NAMED_VALUES)
    chat_tail: list[ChatTurn] = Field(default_factory=list)
    controls: list[Name] = Field(default_factory=list)
    recent_actions: list[Action] = Field(default_factory=list)
    case_started_at: AwareDatetime | None = None
