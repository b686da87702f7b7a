"""The operator console's FastAPI app: :func:`create_app` wires the services, routers and the
topic reader from one frozen settings object.

Routes (every one but ``/healthz`` and ``/metrics`` needs a signed-in operator or a bearer token):

- ``GET /`` the inbox page (with the pending audits); ``GET|POST /login``, ``POST /logout``;
  ``GET /events`` live updates (SSE); ``GET /static/...``; ``/ui/deferrals/{id}/...`` and
  ``/ui/audits/{action_id}/...`` htmx fragments and form answers.
- ``GET /api/inbox``, ``GET /api/counters``, ``GET /api/deferrals/{id}``,
  ``GET /api/processes/{process_id}/action-schema``,
  ``POST /api/deferrals/{id}/accept|correct|alternative``;
  ``GET /api/audits``, ``GET /api/audits/{action_id}``, ``POST /api/audits/{action_id}/right|wrong``.
- ``GET /api/processes/{process_id}/controls``; for supervisors (``console.supervisors``)
  ``POST /api/processes/{process_id}/stage|stage/release|stage/confirm|pause|resume``: the hand controls.
- ``GET /healthz``; ``GET /metrics`` (Prometheus text) when the app is given an exposition.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from opentelemetry import metrics, trace
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from selective_autonomy import __version__
from selective_autonomy.config import ConsoleSettings, Settings
from selective_autonomy.console import api, ui
from selective_autonomy.console.answers import AnswerService
from selective_autonomy.console.audit_answers import AuditAnswerService
from selective_autonomy.console.audits import AuditBook
from selective_autonomy.console.auth import Authenticator
from selective_autonomy.console.catalog import SchemaCatalog
from selective_autonomy.console.context import ConsoleContext, SinkHolder
from selective_autonomy.console.controls import ConsoleControls, NoSuchProcess
from selective_autonomy.console.deps import NotSignedIn
from selective_autonomy.console.errors import ConsoleError
from selective_autonomy.console.feed import KafkaInboxFeed
from selective_autonomy.console.inbox import Inbox
from selective_autonomy.console.live import Broadcaster
from selective_autonomy.console.meters import ConsoleMeters
from selective_autonomy.console.service import InboxService
from selective_autonomy.console.sink import EventSink
from selective_autonomy.console.views import Views
from selective_autonomy.schemas.process import ProcessSchema
from selective_autonomy.streams.prometheus import MetricsExposition, add_metrics_route
from selective_autonomy.webapi.responses import add_framework_error_handlers, http_error_response, status_error_response

log = logging.getLogger(__name__)

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        b"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
]


class SecurityHeaders:
    """Adds the security headers to every response (plain ASGI, so streaming is untouched)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(
    settings: Settings,
    *,
    console: ConsoleSettings | None = None,
    sink: EventSink | None = None,
    inbox: Inbox | None = None,
    audits: AuditBook | None = None,
    start_feed: bool = True,
    schemas: Mapping[str, ProcessSchema] | None = None,
    tracer_provider: trace.TracerProvider | None = None,
    meter_provider: metrics.MeterProvider | None = None,
    exposition: MetricsExposition | None = None,
    clock: Callable[[], float] = time.time,
) -> FastAPI:
    """The console app.

    :param console: console settings; default ``settings.console``.
    :param sink: where answers are sent; default a Kafka producer created on the first answer.
    :param inbox: the inbox; default an empty one built from ``console``.
    :param audits: the pending audits; default an empty book built from ``console``.
    :param start_feed: read the topics into the inbox while the app runs (lifespan); default True.
    :param schemas: process schemas used when ``settings.models_dir`` has none; default none.
    :param tracer_provider: for the answer spans; default the global provider.
    :param meter_provider: for the console's gauges (deferrals waiting, audits pending); default the global provider.
    :param exposition: the Prometheus text of ``meter_provider``, served on ``/metrics``; default none (no route).
    :param clock: epoch seconds, for latencies and counters; default ``time.time``.
    """
    config = console or settings.console
    inbox = inbox or Inbox(
        clock=clock,
        timezone=config.timezone,
        active_window_s=config.active_session_window_s,
        ending_actions=config.ending_actions,
        max_sessions=config.max_tracked_sessions,
    )
    if audits is None:
        audits = AuditBook(
            rate=config.audit_rate,
            max_pending=config.max_pending_audits,
            max_answered=config.max_tracked_sessions,
            clock=clock,
        )
    catalog = SchemaCatalog(settings.models_dir, extra=schemas)
    sinks = SinkHolder(settings, sink=sink)
    secret = config.secret_key.get_secret_value().encode() if config.secret_key is not None else None
    feed = KafkaInboxFeed(settings, inbox, audits=audits) if start_feed else None
    answers = AnswerService(
        inbox, catalog, sinks.get, settings.topics, tracer_provider, clock=clock, timeout_s=config.answer_timeout_s
    )
    context = ConsoleContext(
        settings=settings,
        config=config,
        inbox=inbox,
        catalog=catalog,
        reader=InboxService(
            inbox,
            catalog,
            config,
            feed_state=(lambda: feed.state.value) if feed else lambda: "off",
            audits=audits,
        ),
        answers=answers,
        auth=Authenticator(config.operators, secret=secret, ttl_s=config.session_ttl_s, clock=clock),
        broadcaster=Broadcaster(inbox, audits),
        views=Views(),
        sinks=sinks,
        audits=audits,
        audit_answers=AuditAnswerService(audits, catalog, answers.delivery, clock=clock),
        controls=ConsoleControls(settings, config, answers.delivery),
        feed=feed,
    )
    if not config.operators:
        log.warning("console: no operators configured (console.operators); every request will be refused")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if context.feed is not None:
            context.feed.start()
        try:
            yield
        finally:
            if context.feed is not None:
                context.feed.stop()
            context.controls.close()
            try:
                context.sinks.close()
            except Exception:  # shutting down: report, do not mask the original exit
                log.exception("console: flushing the producer at shutdown failed")

    app = FastAPI(
        title="selective-autonomy operator console",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.console = context
    app.state.meters = ConsoleMeters(inbox, audits, meter_provider)
    app.add_middleware(SecurityHeaders)
    app.include_router(api.router)
    app.include_router(ui.router)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "feed": context.feed.state.value if context.feed else "off"}

    if exposition is not None:
        add_metrics_route(app, exposition)

    _add_error_handlers(app)
    return app


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ConsoleError)
    async def console_error(request: Request, exc: ConsoleError) -> Response:
        return http_error_response(exc)

    @app.exception_handler(NoSuchProcess)
    async def no_such_process(request: Request, exc: NoSuchProcess) -> Response:
        return status_error_response(404, str(exc))

    @app.exception_handler(NotSignedIn)
    async def not_signed_in(request: Request, exc: NotSignedIn) -> Response:
        if request.headers.get("hx-request") == "true":
            return Response(status_code=401, headers={"HX-Redirect": "/login"})
        query = "" if exc.next_url == "/" else "?next=" + _quote(exc.next_url)
        return RedirectResponse("/login" + query, status_code=303)

    add_framework_error_handlers(app)


def _quote(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="/")
