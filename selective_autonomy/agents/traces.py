"""The trace recorder: every ``ui.state`` record into the store's trace table, in every stage.

The operators' own steps on ``ui.state`` are the training data of a process's first policy (and,
later, of its retraining): a process in ``logging`` leaves it once enough complete cases are
recorded (:mod:`selective_autonomy.learning.first_policy`).

It reads ``ui.state`` in a consumer group of its own (``<app_id>-traces``), not the decide agent's.
In the app's group, a worker with the feedback role but not the decide role (the chart's learner)
would be assigned ``ui.state`` partitions that nobody then decides; and in a combined worker a
second faust agent on the topic would hold back the decide agent's commits until the store had
written. With its own group it neither steals partitions nor delays a decision or a commit of the
decide path, and it starts from the earliest retained record the first time (a backfill).

At least once: one poll takes up to ``worker.trace_batch`` records, stores the decodable states of
registered processes in one transaction, and only then commits the batch's offsets. If the store
fails, nothing is committed, the consumer seeks back to the batch and tries again after a pause.
A redelivery after a crash is harmless: the table is idempotent by (process, session, state
version). Records that do not decode or name an unregistered process are skipped: the decide agent
sends those to ``dead.letter``. Every consumer call runs on one thread of its own, so a poll never
overlaps a commit or the close, and nothing blocks the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from confluent_kafka import Consumer, Message, TopicPartition

from selective_autonomy.config import KafkaSettings
from selective_autonomy.errors import DecodeError
from selective_autonomy.inference.registry import ModelRegistry
from selective_autonomy.schemas.events import UIStateChanged
from selective_autonomy.store.repository import FeedbackStore
from selective_autonomy.streams.kafka_config import confluent_config
from selective_autonomy.streams.serialization import AvroCodec

log = logging.getLogger(__name__)

POLL_TIMEOUT_S = 0.2
RETRY_PAUSE_S = (0.5, 1.0, 2.0, 5.0, 10.0)
"""Pauses after consecutive failed batches (the store away)."""

RecordedListener = Callable[[Counter[str]], None]
"""Called on the event loop with the states read per process after each stored batch."""


def trace_group(app_id: str) -> str:
    return f"{app_id}-traces"


class TraceRecorder:
    """Consumes ``ui.state`` into ``store`` until its :meth:`run` task is cancelled.

    :param topic: the ``ui.state`` topic; :param group: the consumer group (:func:`trace_group`).
    :param batch: most records stored in one transaction (``worker.trace_batch``).
    :param on_recorded: called on the event loop after each stored batch (default: nobody).
    :param consumer_overrides: librdkafka properties that win over the defaults (tests).
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        *,
        topic: str,
        group: str,
        batch: int,
        store: FeedbackStore,
        registry: ModelRegistry,
        codec: AvroCodec,
        on_recorded: RecordedListener | None = None,
        **consumer_overrides: Any,
    ) -> None:
        self.kafka = kafka
        self.topic = topic
        self.group = group
        self.batch = batch
        self.store = store
        self.registry = registry
        self.codec = codec
        self.on_recorded = on_recorded
        self.consumer_overrides = consumer_overrides
        self.read = 0  # ui.state records read and stored or skipped, then committed
        self.recorded = 0  # states new to the table
        self.skipped = 0  # undecodable, or of a process nobody registered
        self.failed_batches = 0
        self.last_error: str | None = None
        self._known: set[str] = set()
        self._consumer: Consumer | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="selauto-traces")

    def _new_consumer(self) -> Consumer:
        conf = confluent_config(
            self.kafka,
            "consumer",
            **{
                "group.id": self.group,
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest",
                "enable.partition.eof": False,
                **self.consumer_overrides,
            },
        )
        consumer = Consumer(conf)
        consumer.subscribe([self.topic])
        return consumer

    def _decode(self, messages: Sequence[Message]) -> list[UIStateChanged]:
        states = []
        listed = False
        for message in messages:
            try:
                state = self.codec.decode(message.value(), UIStateChanged)
            except DecodeError:
                self.skipped += 1
                continue
            if state.process_id not in self._known and not listed:
                # A process registered since the last look; listed at most once a batch, so a
                # stream of states for an unknown process does not list the directory per record.
                self._known, listed = set(self.registry.processes()), True
            if state.process_id not in self._known:
                self.skipped += 1
                continue
            states.append(state)
        return states

    def step(self) -> Counter[str]:
        """One batch, blocking: poll, store, commit. Returns the states read per process.

        On a store failure the consumer is rewound to the batch's first offsets and the error raised:
        nothing of the batch is committed, so it is read again.
        """
        if self._consumer is None:
            self._consumer = self._new_consumer()
        consumer = self._consumer
        messages = [m for m in consumer.consume(self.batch, POLL_TIMEOUT_S) if not m.error()]
        if not messages:
            return Counter()
        states = self._decode(messages)
        try:
            self.recorded += self.store.append_traces(states)
        except Exception:
            for position in _positions(messages, first=True):
                with contextlib.suppress(Exception):  # revoked meanwhile: its next owner reads it again
                    consumer.seek(position)
            raise
        try:
            consumer.commit(offsets=_positions(messages, first=False), asynchronous=False)
        except Exception as exc:  # a rebalance took the partition: its next owner re-reads, harmlessly
            log.warning("trace recorder: commit failed: %s", exc)
        self.read += len(messages)
        return Counter(state.process_id for state in states)

    async def run(self) -> None:
        """Record until cancelled; the consumer leaves its group on the way out."""
        loop = asyncio.get_running_loop()
        failures = 0
        try:
            while True:
                try:
                    touched = await loop.run_in_executor(self._thread, self.step)
                except Exception as exc:
                    self.failed_batches += 1
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    pause = RETRY_PAUSE_S[min(failures, len(RETRY_PAUSE_S) - 1)]
                    failures += 1
                    log.exception("trace recorder: batch failed, reading it again in %.1f s", pause)
                    await asyncio.sleep(pause)
                    continue
                failures = 0
                if touched and self.on_recorded is not None:
                    self.on_recorded(touched)
        finally:
            # Queued behind a poll still running on the consumer's thread, never beside it.
            await asyncio.shield(loop.run_in_executor(self._thread, self.close))

    def close(self) -> None:
        """Leave the group (blocking; on the consumer's thread when :meth:`run` calls it)."""
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None

    def health(self) -> dict[str, Any]:
        return {
            "read": self.read,
            "recorded": self.recorded,
            "skipped": self.skipped,
            "failed_batches": self.failed_batches,
            "last_error": self.last_error,
        }


def _positions(messages: Sequence[Message], *, first: bool) -> list[TopicPartition]:
    """Per partition, the batch's first offset (to rewind to) or the one after its last (to commit)."""
    chosen: dict[tuple[str, int], int] = {}
    for message in messages:
        where = (message.topic() or "", message.partition() or 0)
        offset = message.offset() or 0
        known = chosen.get(where)
        chosen[where] = offset if known is None else (min(known, offset) if first else max(known, offset))
    return [TopicPartition(t, p, o if first else o + 1) for (t, p), o in chosen.items()]
