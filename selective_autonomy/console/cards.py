"""What an operator sees of a card or an audit: the PII-masked view, the masked suggestion or
executed step, and the correction form derived from the process's action grammar.

Masking reuses :mod:`selective_autonomy.schemas.view`: PII-flagged fields and arguments are
masked, and so is any PII value quoted in free text (chat, the suggestion's text, the detail).
Without the process schema nothing says which values are personal, so none are shown.

An audit carries no screen state (an ``ActionExecuted`` has none), so only the step's own
PII-flagged arguments are known: they are masked, and so are their values quoted in its other
arguments.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from selective_autonomy.console.audits import PendingAudit
from selective_autonomy.console.inbox import Card
from selective_autonomy.console.protocol import ActionLine, AuditView, CardView, ChatLine, SuggestionView
from selective_autonomy.schemas.event_parts import Action, DeferralReason, Scalar, Verdict
from selective_autonomy.schemas.pii import MASK, masked_value, pii_scrubber, pii_values, quoted_values
from selective_autonomy.schemas.process import ActionKind, ArgumentSpec, ProcessSchema, ValueType
from selective_autonomy.schemas.view import ViewBudget, render_view

_INTEGER = re.compile(r"[+-]?\d+")


def allowed_answers(card: Card) -> list[Verdict]:
    if card.deferral.suggestion is None:
        return [Verdict.corrected]
    return [Verdict.accepted, Verdict.corrected, Verdict.acceptable_alternative]


def mask_action(action: Action, schema: ProcessSchema, scrub: Callable[[str], str]) -> dict[str, Scalar]:
    spec = schema.action(action.action_type)
    pii_args = {arg.name for arg in spec.arguments if arg.pii} if spec is not None else set()
    return {
        name: MASK if name in pii_args and value is not None else masked_value(value, scrub)
        for name, value in action.arguments.items()
    }


def card_view(card: Card, schema: ProcessSchema | None, chat_turns: int = 8, recent_actions: int = 6) -> CardView:
    """The masked view of ``card``; ``schema`` None shows structure only, never values."""
    deferral = card.deferral
    event = deferral.state_event()
    suggestion: SuggestionView | None = None
    elapsed: int | None = None
    if schema is not None:
        budget = ViewBudget(
            max_tokens=8192, max_chat_turns=chat_turns, max_recent_actions=recent_actions, max_value_chars=600
        )
        data = render_view(event, schema, budget).data
        scrub = pii_scrubber(pii_values(event, schema))
        fields: dict[str, Scalar] = dict(data["fields"])
        chat = [ChatLine(speaker=turn["speaker"], text=turn["text"]) for turn in data["chat"]]
        actions = [ActionLine(action_type=a["action_type"], arguments=a["arguments"]) for a in data["recent_actions"]]
        elapsed = data.get("elapsed_s")
        if deferral.suggestion is not None:
            suggestion = SuggestionView(
                action_type=scrub(deferral.suggestion.action_type),
                arguments=mask_action(deferral.suggestion, schema, scrub),
                action_id=deferral.suggestion_action_id,
                tier=deferral.tier,
            )
        detail = scrub(deferral.detail)
    else:
        state = deferral.ui_state
        fields = {name: MASK for name in sorted(state.fields)}
        chat = []
        tail = state.recent_actions[-recent_actions:] if recent_actions else []
        actions = [ActionLine(action_type=a.action_type, arguments={k: MASK for k in a.arguments}) for a in tail]
        if deferral.suggestion is not None:
            suggestion = SuggestionView(
                action_type=deferral.suggestion.action_type,
                arguments={k: MASK for k in deferral.suggestion.arguments},
                action_id=deferral.suggestion_action_id,
                tier=deferral.tier,
            )
        detail = "" if deferral.detail == "" else MASK
    answers = allowed_answers(card)
    if schema is None:
        answers = [v for v in answers if v is Verdict.accepted]
    return CardView(
        deferral_id=deferral.deferral_id,
        session_id=deferral.session_id,
        process_id=deferral.process_id,
        business_cluster=deferral.business_cluster,
        state_version=deferral.state_version,
        reason=deferral.reason,
        detail=detail,
        deferred_at=deferral.deferred_at,
        waiting_since=datetime.fromtimestamp(card.waiting_since, UTC),
        shown_at=datetime.fromtimestamp(card.created_at, UTC),
        elapsed_s=elapsed,
        fields=fields,
        chat=chat,
        recent_actions=actions,
        suggestion=suggestion,
        critic_score=deferral.critic_score,
        policy_probability=deferral.policy_probability,
        threshold=deferral.threshold,
        policy_version=deferral.policy_version,
        critic_version=deferral.critic_version,
        answers=answers,
        schema_known=schema is not None,
    )


def audit_view(audit: PendingAudit, schema: ProcessSchema | None) -> AuditView:
    """The masked view of a pending audit; ``schema`` None shows no argument values."""
    executed = audit.executed
    action = executed.action
    if schema is not None:
        spec = schema.action(action.action_type)
        own_pii = [action.arguments.get(arg.name) for arg in spec.arguments if arg.pii] if spec is not None else []
        arguments = mask_action(action, schema, pii_scrubber(quoted_values(own_pii)))
    else:
        arguments = {name: MASK for name in action.arguments}
    return AuditView(
        action_id=executed.action_id,
        session_id=executed.session_id,
        process_id=executed.process_id,
        business_cluster=executed.business_cluster,
        state_version=executed.state_version,
        action=SuggestionView(
            action_type=action.action_type, arguments=arguments, action_id=executed.action_id, tier=executed.tier
        ),
        critic_score=executed.critic_score,
        threshold=executed.threshold,
        policy_probability=executed.policy_probability,
        policy_version=executed.policy_version,
        critic_version=executed.critic_version,
        executed_at=executed.decided_at,
        shown_at=datetime.fromtimestamp(audit.arrived_at, UTC),
        schema_known=schema is not None,
    )


REASON_LABELS: dict[DeferralReason, str] = {
    DeferralReason.unspecified: "Deferred",
    DeferralReason.copilot_stage: "Copilot stage",
    DeferralReason.below_threshold: "Below threshold",
    DeferralReason.approval_required: "Approval required",
    DeferralReason.guardrail: "Guardrail",
    DeferralReason.schema_violation: "Schema violation",
    DeferralReason.model_unavailable: "Model unavailable",
    DeferralReason.execution_failed: "Execution failed",
}


# -- the correction form ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ArgumentField:
    """One input of the correction form."""

    name: str
    input: str  # select | number | textarea | text
    label: str
    required: bool
    description: str
    options: tuple[str, ...] = ()
    step: str = ""
    value: str = ""
    placeholder: str = ""
    max_length: int | None = None

    @property
    def form_name(self) -> str:
        return f"arg.{self.name}"


@dataclass(frozen=True)
class ActionOption:
    name: str
    kind: ActionKind
    tier: str
    description: str


def action_options(schema: ProcessSchema) -> list[ActionOption]:
    return [ActionOption(a.name, a.kind, a.tier.value, a.description) for a in schema.actions]


def _text_of(value: Scalar) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def argument_fields(
    schema: ProcessSchema, action_type: str, prefill: dict[str, Scalar] | None = None, max_text_chars: int = 2000
) -> list[ArgumentField]:
    """Typed inputs for the arguments of ``action_type``; ``prefill`` values holding a mask are left out."""
    spec = schema.action(action_type)
    if spec is None:
        return []
    values = {k: v for k, v in (prefill or {}).items() if not (isinstance(v, str) and MASK in v) and v != MASK}
    return [_field(arg, _text_of(values.get(arg.name)), max_text_chars) for arg in spec.arguments]


def _field(arg: ArgumentSpec, value: str, max_text_chars: int) -> ArgumentField:
    label = arg.name.replace("_", " ")
    common: dict[str, Any] = {
        "name": arg.name,
        "label": label,
        "required": arg.required,
        "description": arg.description,
    }
    if arg.enum and arg.type in (ValueType.enum, ValueType.string, ValueType.text, ValueType.datetime):
        return ArgumentField(input="select", options=tuple(arg.enum), value=value, **common)
    match arg.type:
        case ValueType.boolean:
            return ArgumentField(input="select", options=("true", "false"), value=value, **common)
        case ValueType.integer:
            return ArgumentField(input="number", step="1", value=value, **common)
        case ValueType.number:
            return ArgumentField(input="number", step="any", value=value, **common)
        case ValueType.text:
            return ArgumentField(input="textarea", value=value, max_length=max_text_chars, **common)
        case ValueType.datetime:
            return ArgumentField(input="text", value=value, placeholder="2026-03-02T09:30:00Z", **common)
        case _:
            return ArgumentField(input="text", value=value, **common)


def coerce_form_action(schema: ProcessSchema, action_type: str, raw: dict[str, str]) -> dict[str, Scalar]:
    """Form strings to typed argument values, following the schema; empty inputs are left out.

    What does not parse stays a string, so the grammar reports it in its own words
    ("must be an integer, got str"). Inputs for arguments the action does not have are kept too
    (and refused by the grammar as unknown).
    """
    spec = schema.action(action_type)
    specs = {arg.name: arg for arg in spec.arguments} if spec is not None else {}
    out: dict[str, Scalar] = {}
    for name, text in raw.items():
        if text == "":
            continue
        arg = specs.get(name)
        out[name] = _coerce(arg.type, text) if arg is not None else text
    return out


def _coerce(kind: ValueType, text: str) -> Scalar:
    value = text.strip()
    match kind:
        case ValueType.integer:
            return int(value) if _INTEGER.fullmatch(value) else text
        case ValueType.number:
            if _INTEGER.fullmatch(value):
                return int(value)
            try:
                number = float(value)
            except ValueError:
                return text
            return number if math.isfinite(number) else text
        case ValueType.boolean:
            lowered = value.lower()
            return True if lowered == "true" else False if lowered == "false" else text
        case _:
            return text
