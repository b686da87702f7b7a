"""The faust app factory: one app from one frozen settings object, no module-global app.

Agents register themselves on the app they are given (see ``agents/``), so importing a module
never starts or configures anything.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka

from selective_autonomy.config import Settings
from selective_autonomy.streams.kafka_config import ProfileTweaks, faust_settings, tweaks_for


def _tweaked_transport(tweaks: ProfileTweaks) -> type[faust_aiokafka.Transport]:
    """faust's aiokafka transport with the profile's fetch wait (faust fixes it at 1.5 s)."""
    fetch_wait_ms = tweaks.consumer_fetch_wait_ms

    class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
        def _create_worker_consumer(self, transport: Any) -> Any:
            consumer = super()._create_worker_consumer(transport)
            # aiokafka reads this attribute when it builds its fetcher at start().
            consumer._fetch_max_wait_ms = fetch_wait_ms
            return consumer

    class Consumer(faust_aiokafka.Consumer):
        def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
            return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    class Transport(faust_aiokafka.Transport):
        pass

    Transport.Consumer = Consumer
    return Transport


class SelautoApp(faust.App):
    """A faust app that applies the broker profile's consumer tweaks."""

    tweaks: ProfileTweaks = ProfileTweaks()

    def _new_transport(self) -> Any:
        if self.tweaks.consumer_fetch_wait_ms is None:
            return super()._new_transport()
        return _tweaked_transport(self.tweaks)(self.conf.broker_consumer, self)


def build_app(
    settings: Settings,
    *,
    app_id: str | None = None,
    web_port: int | None = None,
    datadir: Path | None = None,
    **options: Any,
) -> SelautoApp:
    """A faust app for ``settings``; ``web_port`` enables faust's web server (health endpoints)."""
    conf = faust_settings(settings.kafka)
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
    app.tweaks = tweaks_for(settings.kafka)
    return app


def raw_topic(app: faust.App, name: str, **options: Any) -> faust.TopicT:
    """A topic whose keys and values reach agents as bytes: agents decode themselves so that an
    undecodable record can be dead-lettered with its original bytes instead of crashing."""
    return app.topic(name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw", **options)
