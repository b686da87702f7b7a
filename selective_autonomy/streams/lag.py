"""Consumer lag of a consumer group: records on the broker that the group has not committed yet.

Lag is the high watermark (ListOffsets LATEST) minus the group's committed offset, per partition.
It is only as true as the broker's high watermark: the ``tansu`` broker profile reports a wrong
one after multi-record batches, so the worker does not read lag there (see
``ProfileTweaks.reports_true_high_watermark``).
"""

from __future__ import annotations

from collections.abc import Sequence

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec  # type: ignore[attr-defined]
from pydantic import BaseModel

from selective_autonomy.config import KafkaSettings
from selective_autonomy.errors import BrokerError
from selective_autonomy.streams.kafka_config import confluent_config


class PartitionLag(BaseModel):
    topic: str
    partition: int
    committed: int | None
    """The group's committed offset (the next record it will read); None when nothing is committed."""
    earliest: int
    high_watermark: int

    @property
    def lag(self) -> int:
        """Records the group has still to commit; from the earliest kept record when it has
        committed nothing (the worker then starts there)."""
        start = self.earliest if self.committed is None else max(self.committed, self.earliest)
        return max(0, self.high_watermark - start)


class ConsumerLagReader:
    """Reads the committed offsets of ``group_id`` on ``topics`` and the partitions' watermarks."""

    def __init__(self, kafka: KafkaSettings, group_id: str, topics: Sequence[str], timeout_s: float = 10.0) -> None:
        self.kafka = kafka
        self._admin: AdminClient | None = None
        self.group_id = group_id
        self.topics = list(topics)
        self.timeout_s = timeout_s

    def read(self) -> list[PartitionLag]:
        """Lag per partition of every topic that exists; raises :class:`BrokerError` when the
        broker does not answer."""
        try:
            partitions = self._partitions()
            if not partitions:
                return []
            committed = self._committed(partitions)
            earliest = self._offsets(partitions, OffsetSpec.earliest())  # type: ignore[no-untyped-call]
            latest = self._offsets(partitions, OffsetSpec.latest())  # type: ignore[no-untyped-call]
        except KafkaException as exc:
            raise BrokerError(f"cannot read the consumer lag of group {self.group_id!r}: {exc}") from exc
        return [
            PartitionLag(
                topic=topic,
                partition=partition,
                committed=committed.get((topic, partition)),
                earliest=earliest[(topic, partition)],
                high_watermark=latest[(topic, partition)],
            )
            for topic, partition in partitions
        ]

    @property
    def admin(self) -> AdminClient:
        # Made on the first read: a client connects as soon as it exists, and building a worker
        # (in tests, or before the broker is up) must not.
        if self._admin is None:
            self._admin = AdminClient(confluent_config(self.kafka, "admin"))
        return self._admin

    def _partitions(self) -> list[tuple[str, int]]:
        metadata = self.admin.list_topics(timeout=self.timeout_s).topics
        return [
            (topic, partition)
            for topic in self.topics
            if topic in metadata
            for partition in sorted(metadata[topic].partitions)
        ]

    def _committed(self, partitions: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
        # Partitions are named explicitly: some brokers (Tansu) answer an OffsetFetch for "all
        # topics" with nothing.
        request = ConsumerGroupTopicPartitions(self.group_id, [TopicPartition(t, p) for t, p in partitions])
        futures = self.admin.list_consumer_group_offsets([request], request_timeout=self.timeout_s)
        answer = futures[self.group_id].result()
        # A negative offset (librdkafka's OFFSET_INVALID) means nothing is committed there.
        return {(tp.topic, tp.partition): tp.offset for tp in answer.topic_partitions if tp.offset >= 0}

    def _offsets(self, partitions: list[tuple[str, int]], spec: OffsetSpec) -> dict[tuple[str, int], int]:
        futures = self.admin.list_offsets(
            {TopicPartition(t, p): spec for t, p in partitions}, request_timeout=self.timeout_s
        )
        return {(tp.topic, tp.partition): future.result().offset for tp, future in futures.items()}
