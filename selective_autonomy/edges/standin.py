"""A stand-in BPM platform over HTTP, with a request log: for tests, benchmarks and the worked
example of ``docs/integration-guide.md``.

``POST /sessions/{session_id}/actions/{action_type}`` applies an action (by default it succeeds);
:meth:`StandInPlatform.fail_transiently` makes an action type answer 503 a few times per
``Idempotency-Key`` first, :meth:`StandInPlatform.refuse` makes it answer a 4xx for good.
``GET /requests`` returns the log, ``GET /applied`` what was applied. By default the platform
*ignores* idempotency keys (so the executor's own deduplication is what is tested); pass
``honour_idempotency=True`` for one that replays the first answer for a known key.

Run it on its own with ``python -m selective_autonomy.edges.standin --port 9000``.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse


@dataclass(frozen=True)
class PlatformRequest:
    """One call the platform received, and how it answered."""

    method: str
    path: str
    session_id: str
    action_type: str
    idempotency_key: str | None
    headers: dict[str, str]
    body: Any
    status: int
    at: float


@dataclass(frozen=True)
class _Behaviour:
    transient_failures: int = 0
    transient_status: int = 503
    refuse_status: int | None = None
    refuse_body: str = ""


class StandInPlatform:
    """The platform: a FastAPI app (:attr:`app`) and what it saw (:attr:`requests`, :attr:`applied`)."""

    def __init__(self, honour_idempotency: bool = False) -> None:
        self.honour_idempotency = honour_idempotency
        self.requests: list[PlatformRequest] = []
        self.applied: list[dict[str, Any]] = []
        self._behaviours: dict[str, _Behaviour] = {}
        self._calls: Counter[str] = Counter()
        self._answers: dict[str, tuple[int, dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self.app = self._build()

    def fail_transiently(self, action_type: str, times: int, status: int = 503) -> None:
        """The first ``times`` calls per idempotency key of ``action_type`` answer ``status``."""
        self._behaviours[action_type] = _Behaviour(transient_failures=times, transient_status=status)

    def refuse(self, action_type: str, status: int = 422, body: str = '{"error": "rejected by the platform"}') -> None:
        """Every call of ``action_type`` answers ``status`` with ``body``."""
        self._behaviours[action_type] = _Behaviour(refuse_status=status, refuse_body=body)

    def calls_for(self, action_type: str) -> list[PlatformRequest]:
        with self._lock:
            return [r for r in self.requests if r.action_type == action_type]

    def _answer(self, session_id: str, action_type: str, key: str | None, body: Any) -> tuple[int, dict[str, Any]]:
        behaviour = self._behaviours.get(action_type, _Behaviour())
        counter_key = key or f"{session_id}/{action_type}"
        with self._lock:
            if self.honour_idempotency and key is not None and key in self._answers:
                status, answer = self._answers[key]
                return status, {**answer, "replayed": True}
            self._calls[counter_key] += 1
            if behaviour.refuse_status is not None:
                return behaviour.refuse_status, json.loads(behaviour.refuse_body)
            if self._calls[counter_key] <= behaviour.transient_failures:
                return behaviour.transient_status, {"error": "temporarily unavailable"}
            task_id = len(self.applied) + 1
            self.applied.append(
                {"task_id": task_id, "session_id": session_id, "action_type": action_type, "body": body}
            )
            answer = {"task_id": task_id, "status": "done"}
            if key is not None:
                self._answers[key] = (200, answer)
            return 200, answer

    def _build(self) -> FastAPI:
        app = FastAPI(title="stand-in BPM platform", docs_url=None, redoc_url=None, openapi_url=None)

        @app.post("/sessions/{session_id}/actions/{action_type}")
        async def apply(session_id: str, action_type: str, request: Request) -> JSONResponse:
            raw = await request.body()
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode("utf-8", "replace")
            key = request.headers.get("idempotency-key")
            status, answer = self._answer(session_id, action_type, key, body)
            record = PlatformRequest(
                method=request.method,
                path=request.url.path,
                session_id=session_id,
                action_type=action_type,
                idempotency_key=key,
                headers=dict(request.headers),
                body=body,
                status=status,
                at=time.time(),
            )
            with self._lock:
                self.requests.append(record)
            return JSONResponse(answer, status_code=status)

        @app.get("/requests")
        async def requests() -> list[dict[str, Any]]:
            with self._lock:
                return [asdict(r) for r in self.requests]

        @app.get("/applied")
        async def applied() -> list[dict[str, Any]]:
            with self._lock:
                return list(self.applied)

        @app.get("/healthz")
        async def healthz() -> dict[str, str]:
            return {"status": "ok"}

        return app


@contextmanager
def serve_in_thread(
    app: Any,
    host: str = "127.0.0.1",
    port: int = 0,
    start_timeout_s: float = 10.0,
    *,
    ssl_certfile: str | None = None,
    ssl_keyfile: str | None = None,
    ssl_client_ca: str | None = None,
) -> Iterator[str]:
    """Serve an ASGI app with uvicorn on a background thread; yields its base URL (``port=0``: a free one).

    :param ssl_certfile: serve HTTPS with this certificate (PEM) and ``ssl_keyfile``; default plain HTTP.
    :param ssl_client_ca: with HTTPS, require a client certificate signed by this CA (PEM); default none.
    """
    import ssl

    import uvicorn

    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        lifespan="on",
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
        ssl_ca_certs=ssl_client_ca,
        ssl_cert_reqs=ssl.CERT_REQUIRED if ssl_client_ca else ssl.CERT_NONE,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="selauto-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"uvicorn did not start on {host}:{port}")
        time.sleep(0.01)
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"{'https' if ssl_certfile else 'http'}://{host}:{bound}"
    finally:
        server.should_exit = True
        thread.join(timeout=10.0)


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description="A stand-in BPM platform that logs every call.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--honour-idempotency", action="store_true")
    parser.add_argument(
        "--refuse",
        action="append",
        default=[],
        metavar="ACTION=STATUS",
        help="answer STATUS (e.g. 422) to every call of ACTION; repeatable",
    )
    parser.add_argument(
        "--flaky",
        action="append",
        default=[],
        metavar="ACTION=N",
        help="answer 503 to the first N calls per idempotency key of ACTION; repeatable",
    )
    args = parser.parse_args(argv)
    platform = StandInPlatform(honour_idempotency=args.honour_idempotency)
    for spec in args.refuse:
        action_type, _, status = spec.partition("=")
        platform.refuse(action_type, int(status or 422))
    for spec in args.flaky:
        action_type, _, times = spec.partition("=")
        platform.fail_transiently(action_type, int(times or 1))
    uvicorn.run(platform.app, host=args.host, port=args.port, log_level="info")


if __name__ == "__main__":
    main()
