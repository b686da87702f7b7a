"""The project's topics and their creation through the Kafka admin API."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from selective_autonomy.config import Settings, TopicSettings
from selective_autonomy.errors import BrokerError
from selective_autonomy.streams.kafka_config import confluent_config

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int = 1


RECORD_OF_ROLE: dict[str, str] = {
    "ui_state": "UIStateChanged",
    "actions_proposed": "ActionProposed",
    "actions_executed": "ActionExecuted",
    "operator_deferrals": "OperatorDeferral",
    "copilot_feedback": "CopilotFeedback",
    "dead_letter": "DeadLetter",
    "stage_changes": "StageChanged",
    "actions_failed": "ActionFailed",
}
"""The contract record each topic carries, by its role in :class:`TopicSettings`."""


def value_subjects(topics: TopicSettings) -> dict[str, str]:
    """Each topic's Schema Registry subject (TopicNameStrategy: ``<topic>-value``) and its record."""
    return {f"{name}-value": RECORD_OF_ROLE[role] for role, name in topics.names().items()}


def project_topics(topics: TopicSettings) -> list[TopicSpec]:
    return [TopicSpec(name, topics.partitions, topics.replication_factor) for name in topics.names().values()]


def ensure_topics(settings: Settings, specs: list[TopicSpec] | None = None, timeout_s: float = 15.0) -> list[str]:
    """Create missing topics; return the names created. Existing topics are left as they are
    (a partition-count mismatch is reported, never "fixed": some brokers cannot add partitions)."""
    specs = specs if specs is not None else project_topics(settings.topics)
    admin = AdminClient(confluent_config(settings.kafka, "admin"))
    existing = admin.list_topics(timeout=timeout_s).topics
    missing = [spec for spec in specs if spec.name not in existing]
    for spec in specs:
        if spec.name in existing and len(existing[spec.name].partitions) != spec.partitions:
            have = len(existing[spec.name].partitions)
            log.warning("topic %s exists with %d partitions (configured %d)", spec.name, have, spec.partitions)
    if not missing:
        return []
    futures = admin.create_topics(
        [
            NewTopic(spec.name, num_partitions=spec.partitions, replication_factor=spec.replication_factor)
            for spec in missing
        ],
        operation_timeout=timeout_s,
    )
    created: list[str] = []
    for name, future in futures.items():
        try:
            future.result(timeout=timeout_s)
            created.append(name)
        except KafkaException as exc:
            error = exc.args[0]
            if isinstance(error, KafkaError) and error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue
            raise BrokerError(f"could not create topic {name}: {exc}") from exc
    return created
