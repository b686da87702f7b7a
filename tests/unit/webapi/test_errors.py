"""The one HTTP error model: the console and the ingest webhook refuse in the same body."""

from __future__ import annotations

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from pydantic import BaseModel
from starlette.responses import Response

from selective_autonomy.console.errors import AnswerRefused, CardGone, ConsoleError
from selective_autonomy.edges.ingest.service import InvalidEvent, Refused, TooLarge
from selective_autonomy.webapi.errors import ErrorResponse, HttpError, Violation
from selective_autonomy.webapi.responses import add_framework_error_handlers, http_error_response


class _Body(BaseModel):
    count: int


def _app(error: HttpError) -> FastAPI:
    app = FastAPI()

    @app.exception_handler(HttpError)
    async def refused(request: Request, exc: HttpError) -> Response:
        return http_error_response(exc)

    add_framework_error_handlers(app)

    @app.post("/raise")
    def raise_it() -> None:
        raise error

    @app.post("/body")
    def body(payload: _Body) -> int:
        return payload.count

    return app


def test_both_apis_raise_the_one_error_type() -> None:
    assert issubclass(ConsoleError, HttpError) and issubclass(Refused, HttpError)


@pytest.mark.parametrize(
    "error",
    [
        AnswerRefused("bad action", [Violation(loc="action", msg="unknown action type 'reboot'")]),
        CardGone("answered meanwhile"),
        InvalidEvent("1 violation(s)", [Violation(loc="ui_state.fields.plan", msg="not a choice")]),
        TooLarge("too big"),
    ],
)
def test_a_console_or_ingest_refusal_answers_its_status_code_and_violations(error: HttpError) -> None:
    response = TestClient(_app(error)).post("/raise")
    assert response.status_code == error.status_code
    body = ErrorResponse.model_validate(response.json())
    assert (body.error, body.message, body.violations) == (error.code, error.message, error.violations)
    assert error.messages == ([v.msg for v in error.violations] or [error.message])


def test_framework_refusals_use_the_same_body() -> None:
    client = TestClient(_app(CardGone("x")))
    missing = client.get("/nowhere")
    assert missing.status_code == 404
    assert ErrorResponse.model_validate(missing.json()).error == "not_found"
    invalid = client.post("/body", json={"count": "many"})
    assert invalid.status_code == 422
    body = ErrorResponse.model_validate(invalid.json())
    assert body.error == "invalid_request"
    assert [v.loc for v in body.violations] == ["count"]
