"""Run a faust app inside the current process until a condition holds (demo, tests, benchmarks).

``selauto worker`` runs apps the usual way with a faust Worker; this runner is for callers that
need the app for a bounded job and then need control back.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import faust

from selective_autonomy.errors import SelautoError

T = TypeVar("T")


class RunTimeout(SelautoError):
    """The condition did not hold before the deadline."""


async def run_until(app: faust.App, done: Callable[[], bool], timeout_s: float, poll_s: float = 0.05) -> float:
    """Start ``app``, wait until ``done()`` is true, stop it; return the seconds it ran."""
    started = time.monotonic()
    await app.start()
    try:
        while not done():
            if time.monotonic() - started > timeout_s:
                raise RunTimeout(f"condition not reached within {timeout_s} s")
            await asyncio.sleep(poll_s)
    finally:
        await app.stop()
    return time.monotonic() - started


def run_app_until(app: faust.App, done: Callable[[], bool], timeout_s: float) -> float:
    """Blocking form of :func:`run_until`, on a fresh event loop."""
    loop = asyncio.new_event_loop()
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(run_until(app, done, timeout_s))
    finally:
        loop.close()
        asyncio.set_event_loop(None)


def run_app_beside(app: faust.App, work: Callable[[], T], *, name: str, timeout_s: float) -> T:
    """Run ``app`` here while ``work`` runs in a thread of its own (it may wait on what the app does);
    stop the app once ``work`` returns, and return its result or raise its exception in this thread.

    :param name: the thread's name.
    :raises RunTimeout: ``work`` did not return within ``timeout_s``.
    """
    result: list[T] = []
    failure: list[BaseException] = []
    done = threading.Event()

    def run() -> None:
        try:
            result.append(work())
        except BaseException as error:  # surfaced in the caller's thread
            failure.append(error)
        finally:
            done.set()

    threading.Thread(target=run, name=name, daemon=True).start()
    run_app_until(app, done.is_set, timeout_s=timeout_s)
    if failure:
        raise failure[0]
    return result[0]
