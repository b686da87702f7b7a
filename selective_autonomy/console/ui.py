"""The HTML side: login, the inbox page (with the pending audits), the live stream, htmx
fragments and form answers.

Form answers build the same pydantic bodies as the JSON API (form strings are typed by the
process schema first) and call the same service. htmx gets fragments and ``HX-*`` headers:
success removes the card (or audit row), 409 removes it with a notice, 422 shows the grammar's
messages in the form, 503 keeps it and says so.
"""

from __future__ import annotations

import asyncio
import json
import mimetypes
from collections.abc import AsyncIterator
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from selective_autonomy.console.audits import AuditChange
from selective_autonomy.console.auth import LOGIN_COOKIE, SESSION_COOKIE, Identity
from selective_autonomy.console.cards import action_options, argument_fields, coerce_form_action
from selective_autonomy.console.context import ConsoleContext
from selective_autonomy.console.deps import Context, PageCaller, api_identity, first, identify, read_form
from selective_autonomy.console.errors import ConsoleError
from selective_autonomy.console.inbox import ChangeKind, visible
from selective_autonomy.console.live import RESYNC, sse_message
from selective_autonomy.console.protocol import (
    AcceptRequest,
    ActionInput,
    AlternativeRequest,
    AnswerResponse,
    AuditAnswerResponse,
    AuditRightRequest,
    AuditWrongRequest,
    CardView,
    CorrectRequest,
)
from selective_autonomy.schemas.events import Verdict

router = APIRouter(tags=["ui"], include_in_schema=False)

KEEPALIVE_S = 15.0
COUNTERS_MIN_INTERVAL_S = 1.0
COUNTERS_REFRESH_S = 10.0


def _toast(message: str, level: str = "ok") -> str:
    return json.dumps({"console-toast": {"message": message, "level": level}})


def _safe_next(value: str | None) -> str:
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


# -- login ----------------------------------------------------------------------------------------


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request, ctx: Context, next: str = "/") -> Response:
    if identify(request, ctx) is not None:
        return RedirectResponse(_safe_next(next), status_code=303)
    return _login_form(ctx, next_url=_safe_next(next))


def _login_form(
    ctx: ConsoleContext, next_url: str = "/", error: str | None = None, operator_id: str = "", status_code: int = 200
) -> HTMLResponse:
    nonce = ctx.auth.new_login_nonce()
    if not ctx.auth.has_operators and error is None:
        error = "No operators are configured (console.operators): nobody can sign in."
    page = ctx.views.login(ctx.auth.login_csrf(nonce), error=error, operator_id=operator_id, next_url=next_url)
    response = HTMLResponse(page, status_code=status_code)
    response.set_cookie(
        LOGIN_COOKIE, nonce, max_age=3600, httponly=True, samesite="strict", secure=ctx.config.cookie_secure
    )
    return response


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request, ctx: Context) -> Response:
    form = await read_form(request)
    next_url = _safe_next(first(form, "next"))
    operator_id = (first(form, "operator_id") or "").strip()
    token = first(form, "token") or ""
    if not ctx.auth.check_login_csrf(request.cookies.get(LOGIN_COOKIE), first(form, "csrf_token")):
        return _login_form(ctx, next_url, "The form expired; please sign in again.", operator_id, status_code=403)
    if not ctx.auth.check_login(operator_id, token):
        await asyncio.sleep(0.3)  # slows guessing down a little; tokens are long anyway
        return _login_form(ctx, next_url, "Unknown operator id or wrong token.", operator_id, status_code=401)
    response = RedirectResponse(next_url, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        ctx.auth.issue_session(operator_id),
        max_age=ctx.config.session_ttl_s,
        httponly=True,
        samesite="lax",
        secure=ctx.config.cookie_secure,
    )
    response.delete_cookie(LOGIN_COOKIE)
    return response


@router.post("/logout")
async def logout(ctx: Context, caller: PageCaller) -> Response:
    ctx.auth.revoke(caller)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


# -- the page and its assets ----------------------------------------------------------------------


@router.get("/", response_class=HTMLResponse)
async def inbox_page(ctx: Context, caller: PageCaller) -> HTMLResponse:
    view = await run_in_threadpool(ctx.reader.inbox_view, caller.operator_id)
    audits = await run_in_threadpool(ctx.reader.audit_list, caller.operator_id)
    csrf = caller.csrf_token or ""
    html = ctx.views.page(caller.operator_id, csrf, view.cards, view.counters, audits)
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})


_STATIC = resources.files("selective_autonomy.console").joinpath("static")


@router.get("/static/{path:path}")
async def static(path: str, caller: Annotated[Identity, Depends(api_identity)]) -> Response:
    """The console's own assets, for signed-in operators only."""
    parts = [p for p in path.split("/") if p]
    if not parts or any(p in (".", "..") or p.startswith(".") for p in parts):
        raise HTTPException(status_code=404, detail="not found")
    node: Traversable = _STATIC
    for part in parts:
        node = node.joinpath(part)
    if not node.is_file():
        raise HTTPException(status_code=404, detail="not found")
    media_type = mimetypes.guess_type(parts[-1])[0] or "application/octet-stream"
    if media_type in ("text/javascript", "application/javascript", "text/css"):
        media_type += "; charset=utf-8"
    return Response(node.read_bytes(), media_type=media_type, headers={"Cache-Control": "private, max-age=300"})


# -- the live stream ------------------------------------------------------------------------------


@router.get("/events")
async def events(request: Request, ctx: Context, caller: Annotated[Identity, Depends(api_identity)]) -> Response:
    """Server-sent events: ``inbox`` (all cards, on connect), ``card`` (added or newer version),
    ``remove`` (card id), ``audits`` (all pending audits, on connect), ``audit`` (an audit row
    added), ``audit-remove`` (its action id), ``counters`` (the header tiles)."""
    return StreamingResponse(
        _stream(request, ctx, caller.operator_id),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _stream(request: Request, ctx: ConsoleContext, operator_id: str) -> AsyncIterator[str]:
    subscription = ctx.broadcaster.subscribe()
    visibility = ctx.reader.visibility(operator_id)
    loop = asyncio.get_running_loop()
    try:
        yield "retry: 3000\n\n"
        yield sse_message("inbox", ctx.views.cards(ctx.reader.cards(operator_id)))
        yield sse_message("audits", ctx.views.audits(ctx.reader.audit_list(operator_id)))
        audit_revision = ctx.audits.revision
        counters = ctx.reader.counters(operator_id, COUNTERS_MIN_INTERVAL_S)
        yield sse_message("counters", ctx.views.counters(counters))
        revision = counters.revision  # of the data sent: a shared, older result is followed up
        last_counters = last_sent = loop.time()
        while True:
            item = await subscription.next(1.0)
            if await request.is_disconnected():
                return
            now = loop.time()
            if item == RESYNC:
                yield sse_message("inbox", ctx.views.cards(ctx.reader.cards(operator_id)))
                yield sse_message("audits", ctx.views.audits(ctx.reader.audit_list(operator_id)))
                last_sent = now
            elif item is not None and not isinstance(item, str):
                for change in item:
                    if not visible(visibility, change.process_id):
                        continue
                    if isinstance(change, AuditChange):
                        if change.kind is ChangeKind.upsert and change.audit is not None:
                            yield sse_message("audit", ctx.views.audit(ctx.reader.audit_view(change.audit)))
                        else:
                            yield sse_message("audit-remove", change.action_id)
                    elif change.kind is ChangeKind.upsert and change.card is not None:
                        yield sse_message("card", ctx.views.card(ctx.reader.view(change.card)))
                    else:
                        yield sse_message("remove", change.card_id)
                    last_sent = now
            changed = ctx.inbox.revision != revision or ctx.audits.revision != audit_revision
            stale = changed and now - last_counters >= COUNTERS_MIN_INTERVAL_S
            if stale or now - last_counters >= COUNTERS_REFRESH_S:
                audit_revision = ctx.audits.revision
                counters = ctx.reader.counters(operator_id, COUNTERS_MIN_INTERVAL_S)
                yield sse_message("counters", ctx.views.counters(counters))
                revision = counters.revision
                last_counters = last_sent = now
            if now - last_sent >= KEEPALIVE_S:
                yield ": keepalive\n\n"
                last_sent = now
    finally:
        ctx.broadcaster.unsubscribe(subscription)


# -- fragments ------------------------------------------------------------------------------------


def _gone(message: str) -> Response:
    """409 for htmx: remove the card and say why."""
    return Response(
        status_code=409,
        headers={"HX-Retarget": "closest .card", "HX-Reswap": "delete", "HX-Trigger": _toast(message, "warn")},
    )


def _pending_view(ctx: ConsoleContext, caller: Identity, deferral_id: str) -> CardView | None:
    return ctx.reader.card(caller.operator_id, deferral_id)


@router.get("/ui/deferrals/{deferral_id}/form", response_class=HTMLResponse)
async def answer_form(
    deferral_id: str, ctx: Context, caller: PageCaller, mode: Annotated[str, Query(pattern="^(correct|alternative)$")]
) -> Response:
    card = _pending_view(ctx, caller, deferral_id)
    if card is None:
        return _gone("This deferral was answered or moved on.")
    schema = ctx.catalog.schema(card.process_id)
    allowed = Verdict.corrected if mode == "correct" else Verdict.acceptable_alternative
    if schema is None or allowed not in card.answers:
        return Response(
            status_code=422, headers={"HX-Reswap": "none", "HX-Trigger": _toast("Not possible here.", "warn")}
        )
    action_type = ""
    prefill = None
    if card.suggestion is not None and schema.action(card.suggestion.action_type) is not None:
        action_type, prefill = card.suggestion.action_type, card.suggestion.arguments
    fields = argument_fields(schema, action_type, prefill) if action_type else []
    return HTMLResponse(ctx.views.form(card, mode, action_options(schema), action_type, fields))


@router.get("/ui/deferrals/{deferral_id}/arguments", response_class=HTMLResponse)
async def argument_inputs(
    deferral_id: str, ctx: Context, caller: PageCaller, action_type: Annotated[str, Query(max_length=200)] = ""
) -> Response:
    card = _pending_view(ctx, caller, deferral_id)
    if card is None:
        return _gone("This deferral was answered or moved on.")
    schema = ctx.catalog.schema(card.process_id)
    spec = schema.action(action_type) if schema is not None else None
    if schema is None or spec is None:
        return HTMLResponse(ctx.views.arguments(card, "", [], ""))
    prefill = card.suggestion.arguments if card.suggestion and card.suggestion.action_type == action_type else None
    fields = argument_fields(schema, action_type, prefill)
    return HTMLResponse(ctx.views.arguments(card, action_type, fields, spec.description))


# -- answers from the page ------------------------------------------------------------------------


def _state_version(text: str | None) -> int | None:
    return int(text) if text is not None and text.isdigit() else None


async def _answered(ctx: ConsoleContext, call: str, *args: object) -> Response:
    try:
        result: AnswerResponse = await run_in_threadpool(getattr(ctx.answers, call), *args)
    except ConsoleError as exc:
        if exc.status_code == 409:
            return _gone("Already answered, or the session moved on.")
        if exc.status_code == 422:
            messages = exc.messages
            return HTMLResponse(
                ctx.views.errors(messages),
                status_code=422,
                headers={"HX-Retarget": "find .form-errors", "HX-Reswap": "innerHTML"}
                if call != "accept"
                else {"HX-Reswap": "none", "HX-Trigger": _toast(exc.message, "error")},
            )
        return Response(
            status_code=exc.status_code, headers={"HX-Reswap": "none", "HX-Trigger": _toast(exc.message, "error")}
        )
    verb = {"accepted": "Accepted", "corrected": "Corrected", "acceptable_alternative": "Done"}[result.verdict.value]
    # After the swap, like audit answers: the live stream may already have removed the card.
    return Response(
        status_code=200, headers={"HX-Trigger-After-Swap": _toast(f"{verb}: {result.executed_action.action_type}")}
    )


@router.post("/ui/deferrals/{deferral_id}/accept")
async def accept_from_page(deferral_id: str, request: Request, ctx: Context, caller: PageCaller) -> Response:
    form = await read_form(request)
    body = AcceptRequest(state_version=_state_version(first(form, "state_version")))
    visibility = ctx.reader.visibility(caller.operator_id)
    return await _answered(ctx, "accept", deferral_id, caller.operator_id, visibility, body)


@router.post("/ui/deferrals/{deferral_id}/correct")
async def correct_from_page(deferral_id: str, request: Request, ctx: Context, caller: PageCaller) -> Response:
    return await _own_action(deferral_id, request, ctx, caller, Verdict.corrected)


@router.post("/ui/deferrals/{deferral_id}/alternative")
async def alternative_from_page(deferral_id: str, request: Request, ctx: Context, caller: PageCaller) -> Response:
    return await _own_action(deferral_id, request, ctx, caller, Verdict.acceptable_alternative)


def _form_action(ctx: ConsoleContext, process_id: str, form: dict[str, list[str]]) -> ActionInput | None:
    """The action a form describes, argument strings typed by the process schema; None without an action type."""
    schema = ctx.catalog.schema(process_id)
    action_type = (first(form, "action_type") or "").strip()
    raw = {name[4:]: values[0] for name, values in form.items() if name.startswith("arg.") and values}
    arguments = coerce_form_action(schema, action_type, raw) if schema is not None else dict(raw)
    try:
        return ActionInput(action_type=action_type, arguments=arguments)
    except ValidationError:
        return None


async def _own_action(
    deferral_id: str, request: Request, ctx: ConsoleContext, caller: Identity, verdict: Verdict
) -> Response:
    form = await read_form(request)
    visibility = ctx.reader.visibility(caller.operator_id)
    card = ctx.inbox.get(deferral_id, visibility)
    if card is None:
        return _gone("Already answered, or the session moved on.")
    action = _form_action(ctx, card.process_id, form)
    if action is None:
        return HTMLResponse(
            ctx.views.errors(["choose an action"]),
            status_code=422,
            headers={"HX-Retarget": "find .form-errors", "HX-Reswap": "innerHTML"},
        )
    version = _state_version(first(form, "state_version"))
    if verdict is Verdict.corrected:
        body: CorrectRequest | AlternativeRequest = CorrectRequest(action=action, state_version=version)
        return await _answered(ctx, "correct", deferral_id, caller.operator_id, visibility, body)
    body = AlternativeRequest(action=action, state_version=version)
    return await _answered(ctx, "alternative", deferral_id, caller.operator_id, visibility, body)


# -- audits ---------------------------------------------------------------------------------------

AUDIT_GONE = "This audit was answered meanwhile."


def _audit_base(action_id: str) -> str:
    return "/ui/audits/" + quote(action_id, safe="")


@router.get("/ui/audits/{action_id}/form", response_class=HTMLResponse)
async def audit_form(action_id: str, ctx: Context, caller: PageCaller) -> Response:
    """The "wrong" form: the correction form generated from the grammar, prefilled with the step."""
    audit = ctx.reader.audit(caller.operator_id, action_id)
    if audit is None:
        return _gone(AUDIT_GONE)
    schema = ctx.catalog.schema(audit.process_id)
    if schema is None:
        return Response(
            status_code=422,
            headers={"HX-Reswap": "none", "HX-Trigger": _toast("Wrong answers need the process schema.", "warn")},
        )
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
        return _gone(AUDIT_GONE)
    schema = ctx.catalog.schema(audit.process_id)
    spec = schema.action(action_type) if schema is not None else None
    if schema is None or spec is None:
        return HTMLResponse(ctx.views.arguments(audit, "", [], ""))
    prefill = audit.action.arguments if audit.action.action_type == action_type else None
    fields = argument_fields(schema, action_type, prefill)
    return HTMLResponse(ctx.views.arguments(audit, action_type, fields, spec.description))


async def _audit_answered(ctx: ConsoleContext, call: str, *args: object) -> Response:
    try:
        result: AuditAnswerResponse = await run_in_threadpool(getattr(ctx.audit_answers, call), *args)
    except ConsoleError as exc:
        if exc.status_code == 409:
            return _gone(AUDIT_GONE)
        if exc.status_code == 422 and call == "wrong":
            return HTMLResponse(
                ctx.views.errors(exc.messages),
                status_code=422,
                headers={"HX-Retarget": "find .form-errors", "HX-Reswap": "innerHTML"},
            )
        return Response(
            status_code=exc.status_code, headers={"HX-Reswap": "none", "HX-Trigger": _toast(exc.message, "error")}
        )
    if result.operator_action is None:
        message = f"Audited as right: {result.audited_action.action_type}"
    else:
        message = f"Audited as wrong: should have been {result.operator_action.action_type}"
    # After the swap: htmx then fires it on the body when the live stream has already removed the
    # row (the claim is announced before the broker acknowledges), where HX-Trigger would be lost.
    return Response(status_code=200, headers={"HX-Trigger-After-Swap": _toast(message)})


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
        return _gone(AUDIT_GONE)
    action = _form_action(ctx, audit.process_id, form)
    if action is None:
        return HTMLResponse(
            ctx.views.errors(["choose an action"]),
            status_code=422,
            headers={"HX-Retarget": "find .form-errors", "HX-Reswap": "innerHTML"},
        )
    body = AuditWrongRequest(action=action)
    return await _audit_answered(ctx, "wrong", action_id, caller.operator_id, visibility, body)
