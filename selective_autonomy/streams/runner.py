"""Run a faust app inside the current process until a condition holds (demo, tests, benchmarks).

``selauto worker`` runs apps the usual way with a faust Worker; this runner is for callers that
need the app for a bounded job and then need control back.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import faust

from selective_autonomy.errors import SelautoError


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
