"""Batches of a faust stream's events that the agent acks itself, filled while it works.

faust's ``Stream.noack_take`` stops taking events while the agent handles a batch, then starts the
next batch's window: every batch waits ``within`` (or until ``max_`` events are there) *after* the
previous one was handled, even when events queued up meanwhile. Under load that wait is dead time in
every cycle. :func:`take_batches` keeps taking events into the next batch while the agent handles
one, up to ``max_`` (then the stream waits: backpressure), and counts the window from the batch's
first event: a batch whose first event has waited ``within`` already is handed over at once, a
batch that starts empty waits for its first event and then up to ``within`` for more.

Acks are the caller's, as with ``noack_take``: the stream acks nothing it hands out.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import faust


async def take_batches(stream: faust.StreamT[Any], max_: int, within: float) -> AsyncIterator[list[faust.EventT[Any]]]:
    """Lists of at most ``max_`` events of ``stream``, in stream order, never acked here.

    :param within: the longest a batch waits to fill, from the arrival of its first event.
    """
    # faust's stream is a mode Service: its waits end early when it stops (StreamT does not say so).
    service: Any = stream
    buffer: list[faust.EventT[Any]] = []
    arrived = asyncio.Event()  # the buffer holds an event
    full = asyncio.Event()  # the buffer holds max_ events
    taken = asyncio.Event()  # the buffer was handed over: room again
    first_at = 0.0  # when the buffer's oldest event arrived (loop time)
    loop = asyncio.get_running_loop()
    stream_enable_acks = stream.enable_acks

    async def add_to_buffer(value: Any) -> Any:
        # A processor of the stream, run by faust's passive drainer for every event in turn: while
        # it waits here (a full buffer), the stream takes nothing more.
        event = stream.current_event
        if event is None:
            raise RuntimeError("take_batches: a value arrived without its event")
        while len(buffer) >= max_:
            taken.clear()
            await service.wait(taken)
            if service.should_stop:
                return value
        if not buffer:
            nonlocal first_at
            first_at = loop.time()
        buffer.append(event)
        arrived.set()
        if len(buffer) >= max_:
            full.set()
        return value

    stream.enable_acks = False  # faust's own acks off: the caller acks each event it has handled
    stream.add_processor(add_to_buffer)
    service._enable_passive(aiter(stream.channel))  # as noack_take does
    try:
        while not service.should_stop:
            if not buffer:
                await service.wait_for_stopped(arrived)  # the batch starts with the next event
                if not buffer:
                    continue
            left = first_at + within - loop.time()
            if len(buffer) < max_ and left > 0:
                await service.wait_for_stopped(full, timeout=left)
            batch = buffer[:max_]
            del buffer[: len(batch)]
            if buffer:
                first_at = loop.time()  # not known for the rest: they wait a window from now at most
            else:
                arrived.clear()
            full.clear()
            taken.set()
            yield batch
    finally:
        stream.enable_acks = stream_enable_acks
        service._processors.remove(add_to_buffer)
