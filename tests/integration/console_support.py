"""What the console's integration tests share: a uvicorn server in a thread, a polling wait, the
settings of a console whose model folder holds the test schema, and the headless Chromium setup."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from selective_autonomy.config import Settings
from selective_autonomy.inference.registry import ModelRegistry
from selective_autonomy.streams.broker import free_port
from tests.factories import HELPDESK as SCHEMA

ALICE = {"Authorization": "Bearer alice-token-1"}
CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def with_schema(settings: Settings, tmp_path: Path) -> Settings:
    """``settings`` with a model folder that holds the console test schema."""
    models = tmp_path / "models"
    ModelRegistry(models).save_schema(SCHEMA)
    return settings.model_copy(update={"models_dir": models})


def wait_for(what: Callable[[], Any], timeout_s: float = 20.0) -> Any:
    """Poll ``what`` until it returns something truthy, and return that."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = what()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s} s")


class Server:
    """uvicorn in a thread on a free loopback port."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", timeout_graceful_shutdown=1)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="console-uvicorn", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            assert self.thread.is_alive(), "uvicorn exited"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
