"""The HTTP adapter against httpx's mock transport: routes, headers, bodies and how answers are classified."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from selective_autonomy.config import HttpAdapterSettings, HttpRoute
from selective_autonomy.edges.executor.adapters import AttemptOutcome
from selective_autonomy.edges.executor.http_adapter import HttpAdapter
from selective_autonomy.errors import ConfigError
from selective_autonomy.schemas.event_parts import Action
from tests.factories import executed

SETTINGS = HttpAdapterSettings(
    base_url="https://bpm.example/api/",
    routes={
        "lookup_order": HttpRoute(method="GET", url="/orders/{arguments.order_id}?session={session_id}"),
        "refund": HttpRoute(
            url="https://payments.example/refunds",
            body={"order": "{arguments.order_id}", "amount": "{arguments.amount}", "by": "{executed_by}"},
            headers={"X-Session": "{session_id}", "Idempotency-Key": "not-this-one"},
            timeout_s=2.0,
        ),
        "*": HttpRoute(url="/sessions/{session_id}/actions/{action_type}"),
    },
    headers={"X-Process": "{process_id}"},
    secret_headers={"Authorization": SecretStr("Bearer platform-credential")},
    excerpt_chars=10,
)


def adapter(handler: Callable[[httpx.Request], httpx.Response]) -> tuple[HttpAdapter, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    client = httpx.AsyncClient(transport=httpx.MockTransport(record))
    return HttpAdapter(SETTINGS, client=client), seen


def apply(http: HttpAdapter, action: Any, attempt: int = 1) -> Any:
    return asyncio.run(http.apply(action, attempt))


def test_routes_render_urls_headers_and_bodies() -> None:
    http, seen = adapter(lambda r: httpx.Response(201, json={"ok": True}))
    refund = executed(Action(action_type="refund", arguments={"order_id": "A1", "amount": 9.5}))
    result = apply(http, refund, attempt=2)
    assert result.outcome is AttemptOutcome.applied and result.status_code == 201
    request = seen[0]
    assert (request.method, str(request.url)) == ("POST", "https://payments.example/refunds")
    assert json.loads(request.content) == {"order": "A1", "amount": 9.5, "by": "system"}
    assert request.headers["Idempotency-Key"] == refund.action_id  # a template cannot replace it
    assert request.headers["X-Selauto-Attempt"] == "2"
    assert request.headers["X-Session"] == "s1" and request.headers["X-Process"] == "billing"
    assert request.headers["Authorization"] == "Bearer platform-credential"


def test_get_routes_send_no_body_and_other_types_use_the_fallback_with_the_default_envelope() -> None:
    http, seen = adapter(lambda r: httpx.Response(200))
    apply(http, executed())
    assert str(seen[0].url) == "https://bpm.example/api/orders/A%201%2F2?session=s1" and seen[0].content == b""
    other = executed(Action(action_type="close_chat"))
    apply(http, other)
    assert str(seen[1].url) == "https://bpm.example/api/sessions/s1/actions/close_chat"
    envelope = json.loads(seen[1].content)
    assert envelope["action_id"] == other.action_id and envelope["arguments"] == {}
    assert envelope["state_version"] == 3 and envelope["operator_id"] is None


@pytest.mark.parametrize(
    ("response", "outcome", "retry_after"),
    [
        (httpx.Response(204), AttemptOutcome.applied, None),
        (httpx.Response(500, text="boom"), AttemptOutcome.transient, None),
        (httpx.Response(503, headers={"Retry-After": "4"}), AttemptOutcome.transient, 4.0),
        (httpx.Response(429), AttemptOutcome.transient, None),
        (httpx.Response(408), AttemptOutcome.transient, None),
        (httpx.Response(400, text="x" * 50), AttemptOutcome.permanent, None),
        (httpx.Response(404), AttemptOutcome.permanent, None),
        (httpx.Response(409), AttemptOutcome.permanent, None),
        (httpx.Response(302, headers={"Location": "/elsewhere"}), AttemptOutcome.permanent, None),
    ],
)
def test_answers_are_classified(response: httpx.Response, outcome: AttemptOutcome, retry_after: float | None) -> None:
    http, _ = adapter(lambda r: response)
    result = apply(http, executed())
    assert (result.outcome, result.status_code, result.retry_after_s) == (outcome, response.status_code, retry_after)
    assert len(result.excerpt) <= 10


@pytest.mark.parametrize("error", [httpx.ConnectError("refused"), httpx.ReadTimeout("slow")])
def test_timeouts_and_connection_errors_are_transient(error: Exception) -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise error

    http, _ = adapter(fail)
    result = apply(http, executed())
    assert result.outcome is AttemptOutcome.transient and result.status_code is None


def test_an_action_that_does_not_fit_its_route_is_refused_without_a_call() -> None:
    http, seen = adapter(lambda r: httpx.Response(200))
    result = apply(http, executed(Action(action_type="refund", arguments={"order_id": "A1"})))
    assert result.outcome is AttemptOutcome.permanent and "no argument 'amount'" in result.detail and not seen
    no_fallback = SETTINGS.model_copy(update={"routes": {"refund": SETTINGS.routes["refund"]}})
    result = asyncio.run(HttpAdapter(no_fallback).apply(executed(), 1))
    assert (
        result.outcome is AttemptOutcome.permanent and "no HTTP route for action type 'lookup_order'" in result.detail
    )


def test_bad_configuration_stops_the_adapter_at_start() -> None:
    with pytest.raises(ConfigError, match="routes is empty"):
        HttpAdapter(HttpAdapterSettings())
    with pytest.raises(ConfigError, match="base_url is not set"):
        HttpAdapter(HttpAdapterSettings(routes={"*": HttpRoute(url="/x")}))
    with pytest.raises(ConfigError, match="unknown name 'sesion_id'"):
        HttpAdapter(HttpAdapterSettings(routes={"*": HttpRoute(url="http://h/{sesion_id}")}))
