"""Batches of a faust stream's events that the agent acks itself, filled while it works.

faust's ``Stream.noack_take`` stops taking events while the agent handles a batch, and starts each
batch with a fresh window: every batch waits ``within`` (or until ``max_`` events are there)
*after* the previous one was handled, even when events queued up meanwhile. Under load that wait
is dead time in every cycle. :func:`take_batches` keeps taking events into the next batch while
the agent handles one, up to ``max_`` (then the stream waits: backpressure), and hands that batch
over as soon as the agent asks for it; only a batch that starts empty waits for its first event
and then up to ``within`` for more, as faust's does.

Acks are the caller's, as with ``noack_take``: the stream acks nothing it hands out.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import faust


async def take_batches(stream: faust.StreamT[Any], max_: int, within: float) -> AsyncIterator[list[faust.EventT[Any]]]:
    """Lists of at most ``max_`` events of ``stream``, in stream order, never acked here.

    :param within: how long a batch that starts empty waits for more events after its first.
    """
    # faust's stream is a mode Service: its waits end early when it stops (StreamT does not say so).
    service: Any = stream
    buffer: list[faust.EventT[Any]] = []
    arrived = asyncio.Event()  # the buffer holds an event
    full = asyncio.Event()  # the buffer holds max_ events
    taken = asyncio.Event()  # the buffer was handed over: room again
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
                # Nothing waiting: the batch starts with the next event and gets the window to fill.
                await service.wait_for_stopped(arrived)
                if not buffer:
                    continue
                if len(buffer) < max_:
                    await service.wait_for_stopped(full, timeout=within)
            batch = buffer[:max_]
            del buffer[: len(batch)]
            if not buffer:
                arrived.clear()
            full.clear()
            taken.set()
            yield batch
    finally:
        stream.enable_acks = stream_enable_acks
        service._processors.remove(add_to_buffer)
