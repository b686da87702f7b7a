"""Stage changes made by hand go out on ``stage.changes`` when a broker answers.

The store has the record either way (it is written before); a command run where no broker is
reachable (a laptop, a CI job) says so and succeeds, rather than failing a change that is already
in service. Timeouts are short for the same reason: a missing broker costs seconds, not the 30 s
the long-running publishers wait.
"""

from __future__ import annotations

from collections.abc import Sequence

from confluent_kafka import KafkaException

from selective_autonomy.config import Settings
from selective_autonomy.errors import SelautoError
from selective_autonomy.schemas.events import StageChanged
from selective_autonomy.streams.producer import EventProducer

DEFAULT_TIMEOUT_S = 5.0


def publish_stage_changes(
    settings: Settings, changes: Sequence[StageChanged], timeout_s: float = DEFAULT_TIMEOUT_S
) -> str | None:
    """Emit ``changes`` keyed by process/cluster; None once delivered, else why they were not.

    :param timeout_s: how long to wait for the broker (default 5 s).
    """
    if not changes:
        return None
    timeout_ms = int(timeout_s * 1000)
    quiet = {
        "message.timeout.ms": timeout_ms,
        "socket.connection.setup.timeout.ms": timeout_ms,
        # librdkafka logs each failed connection attempt (a dozen lines a second); the one line
        # returned says the same.
        "log_level": 0,
    }
    try:
        producer = EventProducer(settings, None, **quiet)
        for change in changes:
            producer.send(settings.topics.stage_changes, change, key=f"{change.process_id}/{change.business_cluster}")
        producer.flush(timeout_s + 1.0)
    except (SelautoError, KafkaException) as exc:
        return f"{settings.kafka.bootstrap_servers}: {exc}"
    return None
