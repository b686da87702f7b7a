"""The HTML side of audits: the "wrong" form (htmx fragments) and the right/wrong answers from the page."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from selective_autonomy.console.cards import action_options, argument_fields
from selective_autonomy.console.context import ConsoleContext
from selective_autonomy.console.deps import Context, PageCaller, read_form
from selective_autonomy.console.errors import ConsoleError
from selective_autonomy.console.htmx import arguments_fragment, form_action, form_errors, gone, refused, toast
from selective_autonomy.console.protocol import AuditAnswerResponse, AuditRightRequest, AuditWrongRequest

router = APIRouter(tags=["ui"], include_in_schema=False)

AUDIT_GONE = "This audit was answered meanwhile."


def _audit_base(action_id: str) -> str:
    return "/ui/audits/" + quote(action_id, safe="")


@router.get("/ui/audits/{action_id}/form", response_class=HTMLResponse)
async def audit_form(action_id: str, ctx: Context, caller: PageCaller) -> Response:
    """The "wrong" form: the correction form generated from the grammar, prefilled with the step."""
    audit = ctx.reader.audit(caller.operator_id, action_id)
    if audit is None:
        return gone(AUDIT_GONE)
    schema = ctx.catalog.schema(audit.process_id)
    if schema is None:
        return refused("Wrong answers need the process schema.", "warn")
    action_type = audit.action.action_type if schema.action(audit.action.action_type) is not None else ""
    fields = argument_fields(schema, action_type, audit.action.arguments) if action_type else []
    base = _audit_base(action_id)
    return HTMLResponse(ctx.views.audit_form(audit, base, action_options(schema), action_type, fields))


@router.get("/ui/audits/{action_id}/arguments", response_class=HTMLResponse)
async def audit_argument_inputs(
    action_id: str, ctx: Context, caller: PageCaller, action_type: Annotated[str, Query(max_length=200)] = ""
) -> Response:
    audit = ctx.reader.audit(caller.operator_id, action_id)
    if audit is None:
        return gone(AUDIT_GONE)
    prefill = audit.action.arguments if audit.action.action_type == action_type else None
    return arguments_fragment(ctx, audit, action_type, prefill)


async def _audit_answered(ctx: ConsoleContext, call: str, *args: object) -> Response:
    try:
        result: AuditAnswerResponse = await run_in_threadpool(getattr(ctx.audit_answers, call), *args)
    except ConsoleError as exc:
        if exc.status_code == 409:
            return gone(AUDIT_GONE)
        if exc.status_code == 422 and call == "wrong":
            return form_errors(ctx, exc.messages)
        return refused(exc.message, status_code=exc.status_code)
    if result.operator_action is None:
        message = f"Audited as right: {result.audited_action.action_type}"
    else:
        message = f"Audited as wrong: should have been {result.operator_action.action_type}"
    # After the swap: htmx then fires it on the body when the live stream has already removed the
    # row (the claim is announced before the broker acknowledges), where HX-Trigger would be lost.
    return Response(status_code=200, headers={"HX-Trigger-After-Swap": toast(message)})


@router.post("/ui/audits/{action_id}/right")
async def audit_right_from_page(action_id: str, ctx: Context, caller: PageCaller) -> Response:
    visibility = ctx.reader.visibility(caller.operator_id)
    return await _audit_answered(ctx, "right", action_id, caller.operator_id, visibility, AuditRightRequest())


@router.post("/ui/audits/{action_id}/wrong")
async def audit_wrong_from_page(action_id: str, request: Request, ctx: Context, caller: PageCaller) -> Response:
    form = await read_form(request)
    visibility = ctx.reader.visibility(caller.operator_id)
    audit = ctx.audits.get(action_id, visibility)
    if audit is None:
        return gone(AUDIT_GONE)
    action = form_action(ctx, audit.process_id, form)
    if action is None:
        return form_errors(ctx, ["choose an action"])
    body = AuditWrongRequest(action=action)
    return await _audit_answered(ctx, "wrong", action_id, caller.operator_id, visibility, body)
