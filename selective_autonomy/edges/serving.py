"""Serve a small ASGI app (health, metrics) on the running event loop, beside the process's own work.

The executor's consumer loop owns the process's signals, so the server installs no handlers of its
own; it stops when :meth:`BackgroundServer.stop` is awaited.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any


class BackgroundServer:
    """A uvicorn server running as a task of the current loop."""

    def __init__(self, server: Any, task: asyncio.Task[None]) -> None:
        self.server = server
        self.task = task

    @property
    def port(self) -> int:
        sockets = [s for srv in self.server.servers for s in srv.sockets]
        return int(sockets[0].getsockname()[1]) if sockets else 0

    async def stop(self) -> None:
        self.server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.task, 5.0)


async def start_background_server(app: Any, host: str, port: int) -> BackgroundServer:
    """Start serving ``app`` on ``host:port`` (0: a free port) and return once it listens.

    :raises OSError: when it cannot start (the port in use...).
    """
    import uvicorn

    class QuietServer(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:  # the process owns SIGTERM/SIGINT
            yield

    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off")
    server = QuietServer(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # raises why it could not start (port in use...)
            raise OSError(f"the health server on {host}:{port} stopped at start")
        await asyncio.sleep(0.01)
    return BackgroundServer(server, task)
