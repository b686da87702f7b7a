"""The topic reader that fills the inbox and the pending audits: a confluent-kafka consumer in a
daemon thread.

It reads ``operator.deferrals``, ``actions.executed`` and ``copilot.feedback`` from the beginning
of every partition, with no consumer group and nothing committed: the inbox is rebuilt from the
topics on each start (answered and superseded cards drop out on the way), so a restart loses
nothing and two console replicas need no coordination. Records that do not decode are logged and
skipped; topics that do not exist yet are waited for; partitions added later are picked up.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from enum import StrEnum
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition

from selective_autonomy.config import Settings
from selective_autonomy.console.audits import AuditBook
from selective_autonomy.console.inbox import Inbox
from selective_autonomy.errors import DecodeError
from selective_autonomy.schemas.events import ActionExecuted, CopilotFeedback, EventModel, OperatorDeferral
from selective_autonomy.streams.kafka_config import confluent_config
from selective_autonomy.streams.serialization import AvroCodec, codec_for

log = logging.getLogger(__name__)


class FeedState(StrEnum):
    starting = "starting"
    catching_up = "catching_up"
    live = "live"
    error = "error"
    stopped = "stopped"


class KafkaInboxFeed:
    """Reads the console's topics into ``inbox`` (and ``audits``, when given) until :meth:`stop`.

    :param audits: the pending audits, fed executed actions and feedback too; default none.
    :param poll_timeout_s: one poll's wait; default 0.2 s.
    :param metadata_interval_s: how often missing topics and new partitions are looked for; default 10 s.
    """

    def __init__(
        self,
        settings: Settings,
        inbox: Inbox,
        codec: AvroCodec | None = None,
        poll_timeout_s: float = 0.2,
        metadata_interval_s: float = 10.0,
        *,
        audits: AuditBook | None = None,
        **overrides: Any,
    ) -> None:
        self.settings = settings
        self.inbox = inbox
        self.audits = audits
        self.codec = codec or codec_for(settings)
        self.poll_timeout_s = poll_timeout_s
        self.metadata_interval_s = metadata_interval_s
        topics = settings.topics
        self.models: dict[str, type[EventModel]] = {
            topics.operator_deferrals: OperatorDeferral,
            topics.actions_executed: ActionExecuted,
            topics.copilot_feedback: CopilotFeedback,
        }
        self._conf = confluent_config(
            settings.kafka,
            "consumer",
            **{
                "group.id": f"selauto-console-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "enable.partition.eof": False,
                "auto.offset.reset": "earliest",
                **overrides,
            },
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._assigned: set[tuple[str, int]] = set()
        self.state = FeedState.starting
        self.error: str | None = None
        self.records = 0
        self.undecodable = 0

    def start(self) -> KafkaInboxFeed:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="console-feed", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        self.state = FeedState.stopped

    def _run(self) -> None:
        while not self._stop.is_set():
            consumer: Consumer | None = None
            try:
                consumer = Consumer(self._conf)
                self._consume(consumer)
            except Exception as exc:  # keep the console up: report, wait, reconnect
                self.state, self.error = FeedState.error, f"{type(exc).__name__}: {exc}"
                log.exception("console feed failed; retrying in 2 s")
                self._stop.wait(2.0)
            finally:
                if consumer is not None:
                    try:
                        consumer.close()
                    except Exception:  # closing a broken consumer must not end the loop
                        log.debug("closing the feed consumer failed", exc_info=True)
                self._assigned.clear()

    def _consume(self, consumer: Consumer) -> None:
        next_metadata = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= next_metadata:
                self._assign_new(consumer)
                next_metadata = now + self.metadata_interval_s
            if not self._assigned:
                self._stop.wait(min(1.0, self.metadata_interval_s))
                next_metadata = 0.0
                continue
            message = consumer.poll(self.poll_timeout_s)
            if message is None:
                if self.state in (FeedState.starting, FeedState.catching_up, FeedState.error):
                    self.state, self.error = FeedState.live, None
                continue
            self._handle(message)

    def _assign_new(self, consumer: Consumer) -> None:
        metadata = consumer.list_topics(timeout=10.0)
        new: list[TopicPartition] = []
        for topic in self.models:
            if topic not in metadata.topics:
                continue
            for partition in metadata.topics[topic].partitions:
                if (topic, partition) not in self._assigned:
                    new.append(TopicPartition(topic, partition, OFFSET_BEGINNING))
                    self._assigned.add((topic, partition))
        if new:
            consumer.incremental_assign(new)
            if self.state is FeedState.starting:
                self.state = FeedState.catching_up
            log.info("console feed reads %d new partitions", len(new))
        missing = [t for t in self.models if t not in metadata.topics]
        if missing and not self._assigned:
            log.info("console feed waits for topics %s", ", ".join(missing))

    def _handle(self, message: Message) -> None:
        error = message.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                return
            if error.fatal():
                raise RuntimeError(f"consumer error: {error}")
            log.warning("console feed: %s", error)
            return
        topic = message.topic() or ""
        model = self.models.get(topic)
        if model is None:
            return
        self.records += 1
        try:
            event = self.codec.decode(message.value(), model)
        except DecodeError as exc:
            self.undecodable += 1
            log.warning("skipping undecodable record %s[%s]@%s: %s", topic, message.partition(), message.offset(), exc)
            return
        if isinstance(event, OperatorDeferral):
            self.inbox.on_deferral(event, _headers(message))
        elif isinstance(event, ActionExecuted):
            self.inbox.on_executed(event)
            if self.audits is not None:
                self.audits.on_executed(event, _headers(message), scope=f"{topic}[{message.partition()}]")
        elif isinstance(event, CopilotFeedback):
            self.inbox.on_feedback(event)
            if self.audits is not None:
                self.audits.on_feedback(event)


def _headers(message: Message) -> list[tuple[str, bytes]]:
    raw: list[tuple[str, str | bytes | None]] = list(message.headers() or [])  # type: ignore[arg-type]
    return [(k, v if isinstance(v, bytes) else (v or "").encode()) for k, v in raw]
