"""take_batches: events keep arriving into the next batch while one is handled, the window counts
from a batch's first event (so a batch that filled meanwhile is handed over at once), and a batch
never holds more than max_."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import faust

from selective_autonomy.streams.batches import take_batches


def run_agent(tmp_path: Path, max_: int, within: float, handling_s: float, feed: Any) -> list[tuple[float, list[int]]]:
    """An in-memory faust agent that takes batches and spends ``handling_s`` on each; ``feed(ctx)``
    puts values. Returns (seconds since the first value was put when handed over, values) per batch."""
    app = faust.App("take-batches-test", store="memory://", web_enabled=False, datadir=str(tmp_path))
    seen: list[tuple[float, list[int]]] = []
    started = 0.0

    @app.agent()
    async def agent(stream: faust.StreamT[int]) -> None:
        async for batch in take_batches(stream, max_, within):
            seen.append((time.monotonic() - started, [event.value for event in batch]))
            await asyncio.sleep(handling_s)
            for event in batch:
                await stream.ack(event)

    async def scenario() -> None:
        nonlocal started
        async with agent.test_context() as ctx:
            started = time.monotonic()
            await feed(ctx)
            await asyncio.sleep(handling_s * 2 + within)

    asyncio.run(scenario())
    return seen


def test_events_that_arrive_during_a_batch_are_the_next_batch_without_a_new_window(tmp_path: Path) -> None:
    async def feed(ctx: Any) -> None:
        await ctx.put(0)  # alone: its batch waits the window (0.3 s), then takes 0.5 s
        await asyncio.sleep(0.35)
        for value in (1, 2, 3):  # arrive while batch [0] is handled; their window ends before it is done
            await ctx.put(value)

    seen = run_agent(tmp_path, max_=100, within=0.3, handling_s=0.5, feed=feed)
    assert [values for _, values in seen] == [[0], [1, 2, 3]]
    (first_at, _), (second_at, _) = seen
    assert 0.25 < first_at < 0.45
    # Handed over when batch [0] was done (first_at + 0.5), not a window later (+ 0.3 more).
    assert second_at - first_at < 0.5 + 0.15


def test_a_small_batch_waits_out_the_window_of_its_first_event(tmp_path: Path) -> None:
    async def feed(ctx: Any) -> None:
        await ctx.put(0)
        await asyncio.sleep(0.1)
        await ctx.put(1)  # within the window of 0: the same batch

    seen = run_agent(tmp_path, max_=100, within=0.3, handling_s=0.05, feed=feed)
    assert [values for _, values in seen] == [[0, 1]]
    assert 0.25 < seen[0][0] < 0.45


def test_a_batch_never_holds_more_than_max_and_order_is_kept(tmp_path: Path) -> None:
    async def feed(ctx: Any) -> None:
        for value in range(11):
            await ctx.put(value)

    seen = run_agent(tmp_path, max_=4, within=0.05, handling_s=0.05, feed=feed)
    batches = [values for _, values in seen]
    assert all(len(values) <= 4 for values in batches)
    assert [value for values in batches for value in values] == list(range(11))
