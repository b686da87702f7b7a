"""faust's producer with batches of one for table changelogs only (Tansu's high watermark)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiokafka.errors import KafkaError
from faust.exceptions import ProducerSendError
from faust.transport.drivers import aiokafka as faust_aiokafka

CHANGELOG_SUFFIX = "-changelog"
BULK_MAX_BATCH_SIZE = 16384
"""aiokafka's default batch size, for the records that need no batch-of-one workaround."""


class ChangelogSingletonProducer(faust_aiokafka.Producer):
    """faust's aiokafka producer that keeps batches of one for table changelogs only.

    ``faust_producer_max_batch_size=1`` exists for table recovery (Tansu's wrong high watermark),
    which reads changelog topics only. Applied to every record it costs a produce round trip per
    record and partition (aiokafka's ``send`` waits until a full batch is drained, one request in
    flight per broker): the agents' output records go through a second producer with normal
    batches instead.
    """

    _bulk: Any = None

    async def on_start(self) -> None:
        await super().on_start()
        bulk = self._bulk = self._producer_type(
            **{
                **self._settings_default(),
                **self._settings_auth(),
                **self._settings_extra(),
                "max_batch_size": BULK_MAX_BATCH_SIZE,
            }
        )
        self.beacon.add(bulk)
        await bulk.start()

    async def on_stop(self) -> None:
        await super().on_stop()
        bulk, self._bulk = self._bulk, None
        if bulk is not None:
            await bulk.stop()

    async def flush(self) -> None:
        await super().flush()
        if self._bulk is not None:
            await self._bulk.flush()

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        timestamp: float | None,
        headers: Any,
        *,
        transactional_id: str | None = None,
    ) -> Any:
        bulk = self._bulk
        if bulk is None or transactional_id or topic.endswith(CHANGELOG_SUFFIX):
            return await super().send(
                topic, key, value, partition, timestamp, headers, transactional_id=transactional_id
            )
        # faust's non-transactional send path, on the bulk producer.
        if isinstance(headers, Mapping):
            headers = list(headers.items())
        self._send_on_produce_message(key=key, value=value, partition=partition, timestamp=timestamp, headers=headers)
        if headers is not None and not self.allow_headers:
            headers = None
        timestamp_ms = int(timestamp * 1000.0) if timestamp else timestamp
        try:
            return await bulk.send(
                topic, value, key=key, partition=partition, timestamp_ms=timestamp_ms, headers=headers
            )
        except KafkaError as exc:
            raise ProducerSendError(f"Error while sending: {exc!r}") from exc
