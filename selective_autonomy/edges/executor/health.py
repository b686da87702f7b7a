"""The executor's HTTP face: ``/healthz``, ``/readyz`` and, with an exposition, ``/metrics``."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from selective_autonomy.edges.executor.runner import ExecutorRunner
from selective_autonomy.streams.prometheus import MetricsExposition, add_metrics_route


def health_app(runner: ExecutorRunner, exposition: MetricsExposition | None = None) -> FastAPI:
    """``/healthz`` (alive, with counters), ``/readyz`` (503 until partitions are assigned) and, with
    an ``exposition``, ``/metrics`` (Prometheus text)."""
    app = FastAPI(title="selective-autonomy executor", docs_url=None, redoc_url=None, openapi_url=None)
    if exposition is not None:
        add_metrics_route(app, exposition)

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return runner.health()

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        ready = bool(runner.state.assigned)
        return JSONResponse({"ready": ready, "assigned": runner.state.assigned}, status_code=200 if ready else 503)

    return app
