"""The decide agent's model calls, within the worker's model deadline.

In-process models (embedded, n-gram) run on the event loop; models that call a server run in a
thread of their own, so a slow or dead inference server never stalls commits and acks. A batch the
models do not answer within ``worker.model_deadline_s`` is deferred to operators, and while that
call still runs later batches are deferred at once instead of queueing behind it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor

from selective_autonomy.agents.decisions import Decision, DecisionEngine, timed_out
from selective_autonomy.agents.gate import SessionProgress
from selective_autonomy.agents.metrics import BatchClock, RuntimeMetrics
from selective_autonomy.config import WorkerSettings
from selective_autonomy.schemas.events import UIStateChanged

log = logging.getLogger(__name__)


class ModelDeadline:
    """Calls the decision engine within the deadline; one per decide agent.

    :param worker: the worker section; its ``model_deadline_s`` is read at each call.
    :param metrics: counts the states deferred because the models missed the deadline.
    """

    def __init__(self, worker: WorkerSettings, metrics: RuntimeMetrics) -> None:
        self.worker = worker
        self.metrics = metrics
        # One thread for models that call a server: they never run on the event loop (a slow or dead
        # inference server must not stall commits and acks), and a call that hangs past its deadline
        # holds only this thread; while it runs, later batches are deferred at once (see decide).
        # In-process models run on the loop: see there.
        self._models_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="decide-models")
        self._overdue: asyncio.Future[list[Decision]] | None = None

    @property
    def overdue(self) -> bool:
        """A model call missed its deadline and still runs: until it ends, states are deferred at once."""
        return self._overdue is not None and not self._overdue.done()

    async def decide(
        self,
        engine: DecisionEngine,
        states: list[UIStateChanged],
        progress: Mapping[str, SessionProgress],
        clock: BatchClock | None = None,
    ) -> list[Decision]:
        """The engine's decisions, or every state deferred when the models miss the deadline.

        While a call that missed its deadline is still running, later batches are deferred at once
        instead of queueing behind it: each would wait a deadline of its own, and the latency of a
        decision must stay within one deadline plus the broker's round trip.
        """
        deadline_s = self.worker.model_deadline_s
        if self.overdue:
            self.metrics.on_model_timeout(len(states))
            return [timed_out(state, deadline_s, still_busy=True) for state in states]
        started = time.perf_counter()
        if engine.computes_locally(states):
            # Embedded and n-gram models: a batch costs a few milliseconds of CPU and cannot hang on
            # a server. Handing it to the thread cost more than the call: both threads then compete
            # for the interpreter lock, and at 1,000 events/s the models' wall time per batch went
            # from 3.5 ms here to 5.8-7.5 ms there, 10-15% less throughput at max rate
            # (bench/README.md, "What changed in the decide path").
            try:
                return engine.decide(states, progress)
            finally:
                if clock is not None:
                    clock.models_s += time.perf_counter() - started
        loop = asyncio.get_running_loop()
        call = loop.run_in_executor(self._models_thread, engine.decide, states, progress)
        try:
            # shield: on timeout the call keeps running in its thread, and ``_overdue`` tells when it ends.
            return await asyncio.wait_for(asyncio.shield(call), timeout=deadline_s)
        except TimeoutError:
            self._overdue = call
            log.warning("models missed the %.1f s deadline on %d states: deferred", deadline_s, len(states))
            self.metrics.on_model_timeout(len(states))
            return [timed_out(state, deadline_s) for state in states]
        finally:
            if clock is not None:
                clock.models_s += time.perf_counter() - started
