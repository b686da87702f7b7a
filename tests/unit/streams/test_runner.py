"""run_app_beside: the app runs on the caller's thread while the work runs in its own."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from selective_autonomy.streams.runner import run_app_beside


class _App:
    """Stands in for a faust app: records that it was started and stopped."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def start(self) -> None:
        self.calls.append("start")

    async def stop(self) -> None:
        self.calls.append("stop")


def test_the_work_runs_in_its_own_thread_and_its_result_comes_back() -> None:
    app: Any = _App()
    caller = threading.current_thread().name
    assert run_app_beside(app, lambda: threading.current_thread().name, name="beside", timeout_s=5) == "beside"
    assert caller != "beside" and app.calls == ["start", "stop"]


def test_the_work_s_exception_is_raised_in_the_caller_and_the_app_stopped() -> None:
    app: Any = _App()

    def fail() -> None:
        raise ValueError("no")

    with pytest.raises(ValueError, match="no"):
        run_app_beside(app, fail, name="beside", timeout_s=5)
    assert app.calls == ["start", "stop"]
