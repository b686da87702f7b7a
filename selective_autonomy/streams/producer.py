"""A plain confluent-kafka producer for contract events (simulators, the console, ingest)."""

from __future__ import annotations

from types import TracebackType
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from selective_autonomy.config import KafkaSettings, Settings
from selective_autonomy.errors import BrokerError
from selective_autonomy.schemas.events import EventModel
from selective_autonomy.streams.kafka_config import confluent_config
from selective_autonomy.streams.serialization import AvroCodec, codec_for


class EventProducer:
    """Encodes events with the configured wire format and produces them keyed by session."""

    def __init__(self, settings: Settings | KafkaSettings, codec: AvroCodec | None = None, **overrides: Any) -> None:
        """:param settings: the settings, or their ``kafka`` section alone (then ``codec`` is required).
        :param codec: encodes the events; default :func:`codec_for` the settings.
        :param overrides: librdkafka properties, applied last.
        """
        if isinstance(settings, KafkaSettings):
            if codec is None:
                raise TypeError("a producer built from the kafka section alone needs a codec")
            kafka, self.codec = settings, codec
        else:
            kafka, self.codec = settings.kafka, codec or codec_for(settings)
        self._producer = Producer(confluent_config(kafka, "producer", **overrides))
        self._errors: list[str] = []

    def _on_delivery(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self._errors.append(f"{message.topic()}: {error}")

    def send(
        self,
        topic: str,
        event: EventModel,
        key: str | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        self.send_raw(topic, self.codec.encode(event, topic), key.encode() if key else None, headers)

    def send_raw(
        self, topic: str, value: bytes, key: bytes | None = None, headers: list[tuple[str, bytes]] | None = None
    ) -> None:
        record_headers: list[tuple[str, str | bytes | None]] = list(headers or [])
        while True:
            try:
                self._producer.produce(
                    topic, value=value, key=key, headers=record_headers, on_delivery=self._on_delivery
                )
                break
            except BufferError:
                # Local queue full: serve delivery reports to make room, then retry.
                self._producer.poll(0.1)
        self._producer.poll(0)

    def flush(self, timeout_s: float = 30.0) -> None:
        remaining = self._producer.flush(timeout_s)
        if remaining:
            raise BrokerError(f"{remaining} records were not delivered within {timeout_s} s")
        if self._errors:
            errors, self._errors = self._errors, []
            raise BrokerError(f"{len(errors)} records failed delivery, first: {errors[0]}")

    def __enter__(self) -> EventProducer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if exc_type is None:
                self.flush()
        finally:
            # Release the client: an open handle keeps reconnecting for as long as this object lives.
            self._producer.purge()
            self._producer.close()
