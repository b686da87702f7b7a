"""The OpenAPI document of the console's JSON API (committed as ``docs/openapi-console.json``).

The console serves no document itself (``openapi_url=None``: the pages and htmx fragments are not an
API); this builds one from the ``/api`` routes and ``/healthz`` of a console app, for API clients
and for the fuzz test that holds the app to it.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import SecretStr

from selective_autonomy.config import ConsoleSettings, Settings

DESCRIPTION = (
    "The operator console's JSON API: the inbox of deferred steps, answers to them, and audits of "
    "unattended steps. Every /api route needs `Authorization: Bearer <operator token>` (or a signed-in "
    "session cookie plus its CSRF token); identifiers in paths follow the patterns stated here."
)


def api_document(app: FastAPI) -> dict[str, Any]:
    """The document of ``app``'s JSON routes (``/api/...`` and ``/healthz``)."""
    routes = [r for r in app.routes if isinstance(r, APIRoute) and (r.path.startswith("/api/") or r.path == "/healthz")]
    return get_openapi(
        title="selective-autonomy console API", version=app.version, description=DESCRIPTION, routes=routes
    )


def openapi_document() -> dict[str, Any]:
    """The document with the default settings; no broker is contacted (the topic reader is off)."""
    from selective_autonomy.console.app import create_app

    console = ConsoleSettings(operators={"docs": SecretStr("d" * 16)})
    return api_document(create_app(Settings(), console=console, start_feed=False))
