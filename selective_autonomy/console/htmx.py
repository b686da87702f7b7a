"""What the console's htmx pages share: toasts, the "gone" answer, form errors, reading an action from a
form and the argument inputs of an action type."""

from __future__ import annotations

import json

from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from selective_autonomy.console.cards import argument_fields, coerce_form_action
from selective_autonomy.console.context import ConsoleContext
from selective_autonomy.console.deps import first
from selective_autonomy.console.protocol import ActionInput, AuditView, CardView
from selective_autonomy.schemas.event_parts import Scalar


def toast(message: str, level: str = "ok") -> str:
    return json.dumps({"console-toast": {"message": message, "level": level}})


def gone(message: str) -> Response:
    """409 for htmx: remove the card and say why."""
    return Response(
        status_code=409,
        headers={"HX-Retarget": "closest .card", "HX-Reswap": "delete", "HX-Trigger": toast(message, "warn")},
    )


def refused(message: str, level: str = "error", status_code: int = 422) -> Response:
    """An answer that changes nothing on the page: a toast says why."""
    return Response(status_code=status_code, headers={"HX-Reswap": "none", "HX-Trigger": toast(message, level)})


def form_errors(ctx: ConsoleContext, messages: list[str]) -> HTMLResponse:
    """422 for htmx: ``messages`` in the form's error box."""
    return HTMLResponse(
        ctx.views.errors(messages),
        status_code=422,
        headers={"HX-Retarget": "find .form-errors", "HX-Reswap": "innerHTML"},
    )


def arguments_fragment(
    ctx: ConsoleContext, view: CardView | AuditView, action_type: str, prefill: dict[str, Scalar] | None
) -> HTMLResponse:
    """The inputs of ``action_type``'s arguments for a form about ``view``, filled with ``prefill``; none
    where the process schema or the action type is unknown."""
    schema = ctx.catalog.schema(view.process_id)
    spec = schema.action(action_type) if schema is not None else None
    if schema is None or spec is None:
        return HTMLResponse(ctx.views.arguments(view, "", [], ""))
    fields = argument_fields(schema, action_type, prefill)
    return HTMLResponse(ctx.views.arguments(view, action_type, fields, spec.description))


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
