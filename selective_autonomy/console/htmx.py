"""What the console's htmx pages share: toasts, the "gone" answer, and reading an action from a form."""

from __future__ import annotations

import json

from fastapi.responses import Response
from pydantic import ValidationError

from selective_autonomy.console.cards import coerce_form_action
from selective_autonomy.console.context import ConsoleContext
from selective_autonomy.console.deps import first
from selective_autonomy.console.protocol import ActionInput


def toast(message: str, level: str = "ok") -> str:
    return json.dumps({"console-toast": {"message": message, "level": level}})


def gone(message: str) -> Response:
    """409 for htmx: remove the card and say why."""
    return Response(
        status_code=409,
        headers={"HX-Retarget": "closest .card", "HX-Reswap": "delete", "HX-Trigger": toast(message, "warn")},
    )


def form_action(ctx: ConsoleContext, process_id: str, form: dict[str, list[str]]) -> ActionInput | None:
    """The action a form describes, argument strings typed by the process schema; None without an action type."""
    schema = ctx.catalog.schema(process_id)
    action_type = (first(form, "action_type") or "").strip()
    raw = {name[4:]: values[0] for name, values in form.items() if name.startswith("arg.") and values}
    arguments = coerce_form_action(schema, action_type, raw) if schema is not None else dict(raw)
    try:
        return ActionInput(action_type=action_type, arguments=arguments)
    except ValidationError:
        return None
