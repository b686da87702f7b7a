"""The :class:`~selective_autonomy.webapi.errors.ErrorResponse` of every refusal, for FastAPI apps:
their own errors, the framework's (routing, auth dependencies) and its request validation."""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

from selective_autonomy.webapi.errors import ErrorResponse, HttpError, Violation

HTTP_STATUS_CODES: Mapping[int, str] = {
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
}
"""The ``error`` code of a refusal its status alone names: the framework's (routing, auth dependencies)
and the apps' own (a failed webhook authentication, an unknown process)."""


def error_response(status: int, body: ErrorResponse, headers: Mapping[str, str] | None = None) -> Response:
    return JSONResponse(body.model_dump(mode="json"), status_code=status, headers=dict(headers) if headers else None)


def http_error_response(exc: HttpError, headers: Mapping[str, str] | None = None) -> Response:
    return error_response(exc.status_code, exc.body(), headers)


def status_error_response(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    """A refusal its status names: the ``error`` code from :data:`HTTP_STATUS_CODES` (``http_error`` for
    another status)."""
    return error_response(
        status, ErrorResponse(error=HTTP_STATUS_CODES.get(status, "http_error"), message=message), headers
    )


def http_exception_response(exc: StarletteHTTPException) -> Response:
    return status_error_response(exc.status_code, str(exc.detail), exc.headers)


def invalid_request_response(exc: RequestValidationError) -> Response:
    """A body or parameter FastAPI refused before the route ran: 422 ``invalid_request``, one violation each."""
    violations = [
        Violation(loc=".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body", msg=err.get("msg", ""))
        for err in exc.errors()
    ]
    message = "; ".join(f"{v.loc}: {v.msg}" for v in violations) or "invalid request"
    return error_response(422, ErrorResponse(error="invalid_request", message=message, violations=violations))


def add_framework_error_handlers(app: FastAPI) -> None:
    """Answer the framework's own refusals (routing, auth dependencies, request validation) of ``app``
    in the one :class:`ErrorResponse` body; each app adds the handlers of its own errors."""

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return http_exception_response(exc)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        return invalid_request_response(exc)
