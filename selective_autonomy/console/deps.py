"""FastAPI dependencies: the console context, the caller's identity, CSRF, and form bodies."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any, cast
from urllib.parse import parse_qsl

from fastapi import Depends, HTTPException, Request
from fastapi.routing import APIRoute
from starlette.responses import Response

from selective_autonomy.console.auth import CSRF_FIELD, CSRF_HEADER, SESSION_COOKIE, Identity
from selective_autonomy.console.context import ConsoleContext

MAX_FORM_BYTES = 64 * 1024
FORM_TYPE = "application/x-www-form-urlencoded"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class NotSignedIn(Exception):
    """An anonymous request for a page: answered with a redirect to the login form."""

    def __init__(self, next_url: str) -> None:
        super().__init__(next_url)
        self.next_url = next_url


def get_context(request: Request) -> ConsoleContext:
    return cast(ConsoleContext, request.app.state.console)


Context = Annotated[ConsoleContext, Depends(get_context)]


def identify(request: Request, ctx: ConsoleContext) -> Identity | None:
    """Bearer token when an Authorization header is sent (and only then), else the session cookie."""
    authorization = request.headers.get("authorization")
    if authorization is not None:
        return ctx.auth.from_bearer(authorization)
    return ctx.auth.from_session(request.cookies.get(SESSION_COOKIE))


async def api_identity(request: Request, ctx: Context) -> Identity:
    identity = identify(request, ctx)
    if identity is None:
        raise _unauthenticated()
    return identity


def _unauthenticated() -> HTTPException:
    return HTTPException(
        status_code=401,
        detail="authentication required: a bearer token or a signed-in session",
        headers={"WWW-Authenticate": 'Bearer realm="selauto-console"'},
    )


class AuthenticatedRoute(APIRoute):
    """An API route that refuses an anonymous caller before FastAPI reads the body.

    FastAPI parses a JSON body before it runs any dependency, so without this an unauthenticated
    request with a malformed body got a 400 (and so learnt what the route expects) where every
    other one gets a 401. The :data:`ApiCaller` dependency still runs for the identity and CSRF.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def authenticated_first(request: Request) -> Response:
            if identify(request, get_context(request)) is None:
                raise _unauthenticated()
            return await handler(request)

        return authenticated_first


async def page_identity(request: Request, ctx: Context) -> Identity:
    identity = identify(request, ctx)
    if identity is None:
        path = request.url.path
        raise NotSignedIn(path + (f"?{request.url.query}" if request.url.query else ""))
    return identity


async def read_form(request: Request) -> dict[str, list[str]]:
    """An url-encoded form body (parsed once per request); other content types give an empty form."""
    cached = getattr(request.state, "form_fields", None)
    if cached is not None:
        return cast(dict[str, list[str]], cached)
    fields: dict[str, list[str]] = {}
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == FORM_TYPE:
        body = await request.body()
        if len(body) > MAX_FORM_BYTES:
            raise HTTPException(status_code=413, detail=f"form larger than {MAX_FORM_BYTES} bytes")
        try:
            pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
        except (UnicodeDecodeError, ValueError) as exc:
            raise HTTPException(status_code=400, detail=f"unreadable form: {exc}") from exc
        for name, value in pairs:
            fields.setdefault(name, []).append(value)
    request.state.form_fields = fields
    return fields


def first(form: dict[str, list[str]], name: str) -> str | None:
    values = form.get(name)
    return values[0] if values else None


async def _check_csrf(request: Request, ctx: ConsoleContext, identity: Identity) -> Identity:
    if request.method in SAFE_METHODS:
        return identity
    token = request.headers.get(CSRF_HEADER)
    if token is None:
        token = first(await read_form(request), CSRF_FIELD)
    if not ctx.auth.check_csrf(identity, token):
        raise HTTPException(status_code=403, detail="missing or wrong CSRF token")
    return identity


async def api_caller(request: Request, ctx: Context, identity: Annotated[Identity, Depends(api_identity)]) -> Identity:
    """An authenticated caller; a cookie-authenticated unsafe request must carry the CSRF token."""
    return await _check_csrf(request, ctx, identity)


async def page_caller(
    request: Request, ctx: Context, identity: Annotated[Identity, Depends(page_identity)]
) -> Identity:
    return await _check_csrf(request, ctx, identity)


ApiCaller = Annotated[Identity, Depends(api_caller)]
PageCaller = Annotated[Identity, Depends(page_caller)]
