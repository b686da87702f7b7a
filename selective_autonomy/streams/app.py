"""The faust app factory: one app from one frozen settings object, no module-global app.

The app's transport uses :class:`~selective_autonomy.streams.delivered_acks.DeliveredOnlyAcks` as
its consumer and, where the broker profile needs batches of one,
:class:`~selective_autonomy.streams.changelog_producer.ChangelogSingletonProducer` as its producer.

Agents register themselves on the app they are given (see ``agents/``), so importing a module
never starts or configures anything.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import faust
from faust.tables.recovery import RebalanceAgain
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP
from mode.utils.objects import cached_property
from mode.utils.queues import FlowControlEvent

from selective_autonomy.config import Settings
from selective_autonomy.streams.changelog_producer import ChangelogSingletonProducer
from selective_autonomy.streams.delivered_acks import DeliveredOnlyAcks
from selective_autonomy.streams.kafka_config import ProfileTweaks, faust_settings, tweaks_for

# Loggers that write whole record keys and values at DEBUG (faust's "send: ... v=b'...'", aiokafka's
# "Sending (key=... value=...)"). Records carry the screen's field values, personal data included,
# which must never reach a log: these two stay at INFO whatever level the worker logs at.
PAYLOAD_LOGGERS = ("faust.topics", "aiokafka.producer.producer")

logger = logging.getLogger(__name__)


def quiet_payload_loggers() -> None:
    for name in PAYLOAD_LOGGERS:
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() < logging.INFO or logger.level < logging.INFO:
            logger.setLevel(logging.INFO)


def require_seekable(partitions: Mapping[TP, Any]) -> None:
    """Raise faust's ``RebalanceAgain`` where a table-recovery seek holds an offset that is not a
    non-negative integer.

    Why: faust's ``Recovery.on_rebalance`` clears the recovery's partition sets and re-adds them with
    offset None, then sets ``signal_recovery_start``. A recovery pass still running seeks with those
    sets (they are the same objects), aiokafka rejects ``seek(tp, None)`` with
    ``ValueError('Offset must be a positive integer')``, mode's ``wait_first`` passes the coroutine's
    error on although the rebalance signal is set, and faust's loop catches only ``RebalanceAgain``:
    the worker died (found by the chaos test, docs/guarantees.md). ``RebalanceAgain`` makes the pass
    start over, after the pending rebalance, with offsets built afresh.
    """
    stale = {tp: offset for tp, offset in partitions.items() if not isinstance(offset, int) or offset < 0}
    if stale:
        logger.warning("table recovery seek with stale offsets %s: restarting recovery", stale)
        raise RebalanceAgain()


def _transport_for(tweaks: ProfileTweaks) -> type[faust_aiokafka.Transport]:
    """faust's aiokafka transport with :class:`DeliveredOnlyAcks`, the profile's fetch wait (faust
    fixes it at 1.5 s), and batches of one only where the profile needs them (see
    :class:`ChangelogSingletonProducer`)."""
    fetch_wait_ms = tweaks.consumer_fetch_wait_ms

    class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
        def _create_worker_consumer(self, transport: Any) -> Any:
            consumer = super()._create_worker_consumer(transport)
            # aiokafka reads this attribute when it builds its fetcher at start().
            consumer._fetch_max_wait_ms = fetch_wait_ms
            return consumer

    class Consumer(DeliveredOnlyAcks):
        async def seek_wait(self, partitions: Mapping[TP, int]) -> None:
            # faust calls this only from table recovery (Recovery._seek_offsets).
            require_seekable(partitions)
            await super().seek_wait(partitions)

        def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
            if fetch_wait_ms is None:
                return super()._new_consumer_thread()
            return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    class Transport(faust_aiokafka.Transport):
        pass

    Transport.Consumer = Consumer
    if tweaks.faust_producer_max_batch_size is not None:
        Transport.Producer = ChangelogSingletonProducer
    return Transport


class DropReportingFlowControl(FlowControlEvent):
    """faust's flow control of the agents' queues, which reports each record that a clear drops.

    faust clears the queues on every ``resume()``, also on one while flow is already active, and its
    table recovery ends with such a resume (``Recovery._resume_streams``: the stream partitions are
    resumed and sought to the committed offsets while the fetcher runs, then flow is resumed again).
    Records fetched in between and queued for an agent were dropped there: in the restart test the
    committed record of a partition was queued, cleared, never acknowledged, and the partition stalled
    at it (docs/guarantees.md). The consumer reads such a record's partition again from it.
    """

    def __init__(self, on_drop: Callable[[Any], None], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._on_drop = on_drop

    def clear(self) -> None:
        dropped = [
            item.message
            for queue in list(self._queues)
            for item in list(queue._queue)  # type: ignore[attr-defined]  # what FlowControlQueue.clear empties
            if getattr(item, "message", None) is not None
        ]
        super().clear()
        for message in dropped:
            self._on_drop(message)


class SelautoApp(faust.App):
    """A faust app whose consumer acks only delivered records and applies the broker profile's tweaks."""

    tweaks: ProfileTweaks = ProfileTweaks()

    @cached_property
    def flow_control(self) -> FlowControlEvent:
        return DropReportingFlowControl(self._on_queued_record_dropped, loop=self.loop)

    def _on_queued_record_dropped(self, message: Any) -> None:
        consumer = self._consumer
        if isinstance(consumer, DeliveredOnlyAcks):
            consumer.on_dropped(message.tp, message.offset, message.generation_id, "cleared from its queue")

    def _new_transport(self) -> Any:
        return _transport_for(self.tweaks)(self.conf.broker_consumer, self)

    def fetch_wait_ms(self) -> int | None:
        """The fetch wait (``fetch.wait.max.ms``) the running consumer uses: the profile's, or faust's
        fixed 1,500 ms where the profile keeps it; None before the consumer has started."""
        thread = getattr(self._consumer, "_thread", None)
        client = getattr(thread, "_consumer", None)
        wait = getattr(client, "_fetch_max_wait_ms", None)
        return int(wait) if wait is not None else None


def build_app(
    settings: Settings,
    *,
    app_id: str | None = None,
    web_port: int | None = None,
    datadir: Path | None = None,
    tweaks: ProfileTweaks | None = None,
    **options: Any,
) -> SelautoApp:
    """A faust app for ``settings``.

    :param web_port: enables faust's web server (health endpoints); default off.
    :param tweaks: the broker profile's client tweaks to apply instead of ``settings.kafka.profile``'s
        (experiments such as the streaming benchmark's fetch-wait comparison); default the profile's.
    :param options: further faust settings, applied last.
    """
    quiet_payload_loggers()
    tweaks = tweaks or tweaks_for(settings.kafka)
    conf = faust_settings(settings.kafka, tweaks)
    datadir = datadir or settings.data_dir / "faust"
    datadir.mkdir(parents=True, exist_ok=True)
    conf.update(
        topic_partitions=settings.topics.partitions,
        topic_replication_factor=settings.topics.replication_factor,
        datadir=str(datadir),
        web_enabled=web_port is not None,
        web_port=web_port or 6066,
        web_host="0.0.0.0",
    )
    conf.update(options)
    app = SelautoApp(app_id or settings.app_id, **conf)
    app.tweaks = tweaks
    return app


def raw_topic(app: faust.App, name: str, **options: Any) -> faust.TopicT:
    """A topic whose keys and values reach agents as bytes: agents decode themselves so that an
    undecodable record can be dead-lettered with its original bytes instead of crashing."""
    return app.topic(name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw", **options)
