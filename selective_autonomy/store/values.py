"""How the store keeps enum members and actions in its columns."""

from __future__ import annotations

from selective_autonomy.schemas.event_parts import Action, ActionTier, DeferralReason, Stage


def enum_value(member: Stage | ActionTier | DeferralReason | None) -> str | None:
    return None if member is None else member.value


def action_json(action: Action | None) -> str | None:
    return None if action is None else action.model_dump_json()


def action_from(text: str | None) -> Action | None:
    return None if text is None else Action.model_validate_json(text)
