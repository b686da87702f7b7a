"""How the store keeps enum members and actions in its columns, and reads rows back into models."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel
from sqlalchemy.engine import RowMapping

from selective_autonomy.schemas.event_parts import Action, ActionTier, DeferralReason, Stage

M = TypeVar("M", bound=BaseModel)


def enum_value(member: Stage | ActionTier | DeferralReason | None) -> str | None:
    return None if member is None else member.value


def action_json(action: Action | None) -> str | None:
    return None if action is None else action.model_dump_json()


def action_from(text: str | None) -> Action | None:
    return None if text is None else Action.model_validate_json(text)


def from_row(model: type[M], row: RowMapping, prefix: str = "", /, **converted: Any) -> M:
    """``model`` from a row whose columns are named like its fields (``prefix`` + name in a join).

    ``converted`` gives the fields whose column needs code (JSON text, a column of another name);
    every other field is read from its column, so a missing column raises ``KeyError``, and columns
    that are no field (a surrogate id, the other side of a join) are ignored. Validation is the
    constructor's: pydantic turns an enum's text into its member; bools and UTC-aware datetimes
    already come back typed from their column types (``Boolean``, ``UTCDateTime``) and are kept.
    """
    columns = {name: row[prefix + name] for name in model.model_fields if name not in converted}
    return model.model_validate({**columns, **converted})
