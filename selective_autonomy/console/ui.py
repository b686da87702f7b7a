"""The HTML side: login, the inbox page (with the pending audits), the live stream, and (from
:mod:`.ui_deferrals` and :mod:`.ui_audits`, included in this router) htmx fragments and form answers.

Form answers build the same pydantic bodies as the JSON API (form strings are typed by the
process schema first) and call the same service. htmx gets fragments and ``HX-*`` headers:
success removes the card (or audit row), 409 removes it with a notice, 422 shows the grammar's
messages in the form, 503 keeps it and says so.
"""

from __future__ import annotations

import asyncio
import mimetypes
from collections.abc import AsyncIterator
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from selective_autonomy.console import ui_audits, ui_deferrals
from selective_autonomy.console.audits import AuditChange
from selective_autonomy.console.auth import LOGIN_COOKIE, SESSION_COOKIE, Identity
from selective_autonomy.console.context import ConsoleContext
from selective_autonomy.console.deps import Context, PageCaller, api_identity, first, identify, read_form
from selective_autonomy.console.inbox import ChangeKind, visible
from selective_autonomy.console.live import RESYNC, sse_message

router = APIRouter(tags=["ui"], include_in_schema=False)

KEEPALIVE_S = 15.0
COUNTERS_MIN_INTERVAL_S = 1.0
COUNTERS_REFRESH_S = 10.0


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


# The deferral and audit fragments and answers are routers of their own, served under this one.
router.include_router(ui_deferrals.router)
router.include_router(ui_audits.router)
