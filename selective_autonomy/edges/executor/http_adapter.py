"""The HTTP adapter: one configured route per action type, the action id as ``Idempotency-Key``.

Each call sends ``Idempotency-Key: <action_id>`` (the same on every retry and every redelivery),
``X-Selauto-Attempt: <n>`` and the W3C trace context of the executor's span, after the route's and
the adapter's own headers, so no template can replace them.

Answers: 2xx applied; 5xx and ``transient_statuses`` (408, 425, 429 by default) transient, with
``Retry-After`` honoured; every other status permanent (a redirect too: the URL is wrong). A timeout
or a connection error is transient; note that a timed-out call may still have been applied, which is
exactly what the idempotency key lets the platform recognise on the retry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from opentelemetry import propagate

from selective_autonomy.config import DEFAULT_BODY, HttpAdapterSettings, HttpRoute
from selective_autonomy.edges.errors import TemplateError
from selective_autonomy.edges.executor.adapters import AdapterResult
from selective_autonomy.edges.executor.retry import parse_retry_after
from selective_autonomy.edges.executor.templates import HeaderTemplate, JsonTemplate, UrlTemplate, action_context
from selective_autonomy.errors import ConfigError
from selective_autonomy.schemas.events import ActionExecuted

IDEMPOTENCY_HEADER = "Idempotency-Key"
ATTEMPT_HEADER = "X-Selauto-Attempt"
FALLBACK_ROUTE = "*"
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


@dataclass(frozen=True)
class CompiledRoute:
    method: str
    url: UrlTemplate
    body: JsonTemplate | None
    headers: dict[str, HeaderTemplate]
    timeout_s: float

    @classmethod
    def compile(cls, name: str, route: HttpRoute, settings: HttpAdapterSettings) -> CompiledRoute:
        url = route.url
        if not url.lower().startswith(("http://", "https://")):
            if settings.base_url is None:
                raise ConfigError(f"route {name!r}: URL {url!r} is relative and executor.http.base_url is not set")
            url = settings.base_url.rstrip("/") + "/" + url.lstrip("/")
        try:
            body_document = route.body if route.body is not None else DEFAULT_BODY
            return cls(
                method=route.method,
                url=UrlTemplate(url),
                body=JsonTemplate(body_document) if route.method in _BODY_METHODS else None,
                headers={name: HeaderTemplate(value) for name, value in {**settings.headers, **route.headers}.items()},
                timeout_s=route.timeout_s or settings.timeout_s,
            )
        except TemplateError as exc:
            raise ConfigError(f"route {name!r}: {exc}") from exc


def classify(response: httpx.Response, transient_statuses: frozenset[int], excerpt_chars: int) -> AdapterResult:
    """What an HTTP answer means for the action."""
    status = response.status_code
    excerpt = response.text[:excerpt_chars] if excerpt_chars else ""
    where = f"{response.request.method} {response.request.url}"
    if 200 <= status < 300:
        return AdapterResult.applied(status, f"{where} answered {status}", excerpt)
    if status >= 500 or status in transient_statuses:
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        return AdapterResult.transient(f"{where} answered {status}", status, excerpt, retry_after)
    return AdapterResult.permanent(f"{where} answered {status}", status, excerpt)


class HttpAdapter:
    """Applies actions over HTTP.

    :param settings: the routes, shared headers, timeouts.
    :param client: the HTTP client; default one built from the settings (closed by :meth:`aclose`).
    :raises ConfigError: when there is no route, or a template does not compile.
    """

    name = "http"

    def __init__(self, settings: HttpAdapterSettings, client: httpx.AsyncClient | None = None) -> None:
        if not settings.routes:
            raise ConfigError("executor.http.routes is empty: name a route per action type (or '*' for all)")
        self.settings = settings
        self.routes = {name: CompiledRoute.compile(name, route, settings) for name, route in settings.routes.items()}
        self.secret_headers = {name: value.get_secret_value() for name, value in settings.secret_headers.items()}
        self.transient_statuses = frozenset(settings.transient_statuses)
        limits = httpx.Limits(
            max_connections=settings.max_connections, max_keepalive_connections=settings.max_connections
        )
        self._owns_client = client is None
        self.client = client or httpx.AsyncClient(timeout=settings.timeout_s, limits=limits, follow_redirects=False)

    def route_for(self, action_type: str) -> CompiledRoute | None:
        return self.routes.get(action_type) or self.routes.get(FALLBACK_ROUTE)

    def build_request(self, action: ActionExecuted, attempt: int) -> httpx.Request:
        """The request for one attempt; raises :class:`TemplateError` when the action does not fit the route."""
        route = self.route_for(action.action.action_type)
        if route is None:
            known = ", ".join(sorted(self.routes))
            raise TemplateError(f"no HTTP route for action type {action.action.action_type!r} (routes: {known})")
        context = action_context(action)
        headers: dict[str, str] = {name: t.render_header(context) for name, t in route.headers.items()}
        headers.update(self.secret_headers)
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        headers.update(carrier)
        headers[IDEMPOTENCY_HEADER] = action.action_id
        headers[ATTEMPT_HEADER] = str(attempt)
        body: Any = route.body.render(context) if route.body is not None else None
        return self.client.build_request(
            route.method,
            route.url.render_url(context),
            headers=headers,
            json=body if route.body is not None else None,
            timeout=route.timeout_s,
        )

    async def apply(self, action: ActionExecuted, attempt: int) -> AdapterResult:
        try:
            request = self.build_request(action, attempt)
        except TemplateError as exc:
            return AdapterResult.permanent(str(exc))
        where = f"{request.method} {request.url}"
        try:
            response = await self.client.send(request)
        except httpx.TimeoutException as exc:
            return AdapterResult.transient(f"{where} timed out ({type(exc).__name__})")
        except httpx.TransportError as exc:
            return AdapterResult.transient(f"{where} failed: {type(exc).__name__}: {exc}")
        return classify(response, self.transient_statuses, self.settings.excerpt_chars)

    async def aclose(self) -> None:
        if self._owns_client:
            await self.client.aclose()
