"""The consumer loop's batch step without Kafka: decoding, dead letters, per-session order, failure
hand-over, and a retried batch after the broker refused the failure records."""

from __future__ import annotations

import asyncio

import pytest
from confluent_kafka import Message

from selective_autonomy.config import Settings
from selective_autonomy.edges.errors import NotDelivered
from selective_autonomy.edges.executor.adapters import InMemoryPlatform
from selective_autonomy.edges.executor.ledger import MemoryLedger
from selective_autonomy.edges.executor.retry import Backoff
from selective_autonomy.edges.executor.runner import ExecutorRunner
from selective_autonomy.edges.executor.service import ActionExecutor, ExecutionStatus
from selective_autonomy.schemas.event_parts import Action, DeferralReason
from selective_autonomy.schemas.events import ActionFailed, DeadLetter, OperatorDeferral
from selective_autonomy.store import ActionStatus
from selective_autonomy.streams.serialization import AvroCodec
from tests.factories import executed
from tests.support.fakes import ListPublisher

TOPIC = "actions.executed"
CODEC = AvroCodec()


def message(value: bytes, key: str, offset: int, partition: int = 0) -> Message:
    return Message(topic=TOPIC, partition=partition, offset=offset, key=key.encode(), value=value, headers=None)


def encoded(action: object, offset: int, partition: int = 0) -> Message:
    return message(CODEC.encode(action, TOPIC), action.session_id, offset, partition)  # type: ignore[arg-type, attr-defined]


def runner_with(platform: InMemoryPlatform, publisher: ListPublisher, ledger: MemoryLedger) -> ExecutorRunner:
    executor = ActionExecutor(platform, ledger, Backoff(max_attempts=1))
    return ExecutorRunner(Settings(), executor, publisher)


def test_a_batch_applies_in_session_order_hands_failures_over_and_dead_letters_garbage() -> None:
    platform = InMemoryPlatform(refuse={"refund": 409})
    publisher, ledger = ListPublisher(), MemoryLedger()
    first = executed(Action(action_type="lookup_order", arguments={"order_id": "A1"}), session="a", version=1)
    second = executed(Action(action_type="send_invoice"), session="a", version=2)
    refused = executed(Action(action_type="refund", arguments={"amount": 5.0}), session="b", version=1)
    batch = [encoded(first, 0), encoded(refused, 0, 1), encoded(second, 1), message(b"\x00junk", "c", 2)]
    executions = asyncio.run(runner_with(platform, publisher, ledger).process(batch))
    assert [(e.action.session_id, e.status) for e in executions] == [
        ("a", ExecutionStatus.applied),
        ("a", ExecutionStatus.applied),
        ("b", ExecutionStatus.failed),
    ]
    assert [a.action_id for a in platform.applied] == [first.action_id, second.action_id]
    by_topic = {r.topic: r for r in publisher.records}
    assert isinstance(by_topic["actions.failed"].event, ActionFailed) and by_topic["actions.failed"].key == "b"
    deferral = by_topic["operator.deferrals"].event
    assert isinstance(deferral, OperatorDeferral) and deferral.reason is DeferralReason.execution_failed
    letter = by_topic["dead.letter"].event
    assert isinstance(letter, DeadLetter) and (letter.offset, letter.key) == (2, b"c")
    assert ledger.entries[refused.action_id][0] is ActionStatus.failed


def test_a_batch_retried_after_the_broker_refused_the_failure_records_hands_over_the_same_failure() -> None:
    platform = InMemoryPlatform(refuse={"refund": 422})
    ledger = MemoryLedger()
    refused = executed(Action(action_type="refund", arguments={"amount": 5.0}), session="b", version=1)
    other = executed(session="a")
    failing = ListPublisher(fail=True)
    runner = runner_with(platform, failing, ledger)
    with pytest.raises(NotDelivered):
        asyncio.run(runner.process([encoded(refused, 0), encoded(other, 0, 1)]))
    assert ledger.entries[refused.action_id][0] is ActionStatus.claimed  # not recorded: nothing was handed over
    assert ledger.entries[other.action_id][0] is ActionStatus.applied  # the other session finished anyway
    working = ListPublisher()
    runner.publisher = working
    executions = asyncio.run(runner.process([encoded(refused, 0), encoded(other, 0, 1)]))
    assert [e.status for e in executions] == [ExecutionStatus.failed, ExecutionStatus.duplicate]
    failed = next(r.event for r in working.records if r.topic == "actions.failed")
    assert isinstance(failed, ActionFailed) and failed.status_code == 422  # the real answer, not "unknown"
    assert platform.calls[refused.action_id] == 1 and platform.calls[other.action_id] == 1
    assert ledger.entries[refused.action_id][0] is ActionStatus.failed


def test_positions_rewind_to_the_first_offset_and_commit_after_the_last() -> None:
    batch = [message(b"", "k", 7), message(b"", "k", 9), message(b"", "k", 3, partition=1)]
    rewind = {(p.partition, p.offset) for p in ExecutorRunner._positions(batch, first=True)}
    commit = {(p.partition, p.offset) for p in ExecutorRunner._positions(batch, first=False)}
    assert rewind == {(0, 7), (1, 3)} and commit == {(0, 10), (1, 4)}
