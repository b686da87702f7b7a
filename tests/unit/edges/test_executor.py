"""Applying one action: claim, retries, outcomes, redelivery, unknown outcomes, and what failures publish."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from selective_autonomy.edges.executor.adapters import (
    AdapterResult,
    CallableAdapter,
    InMemoryPlatform,
    PermanentFailure,
    TransientFailure,
)
from selective_autonomy.edges.executor.failures import action_failed, failure_deferral, failure_deferral_id
from selective_autonomy.edges.executor.ledger import MemoryLedger, StoreLedger, claim_key
from selective_autonomy.edges.executor.retry import Backoff
from selective_autonomy.edges.executor.service import ActionExecutor, ExecutionStatus
from selective_autonomy.schemas.event_parts import Action, DeferralReason, Executor
from selective_autonomy.schemas.events import ActionFailed
from selective_autonomy.store import ActionStatus, FeedbackStore
from selective_autonomy.streams.serialization import AvroCodec
from tests.factories import executed

T = TypeVar("T")
ACTION = executed()


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


class Sleeps:
    """Records the waits instead of sleeping, and advances a fake clock by them."""

    def __init__(self) -> None:
        self.waits: list[float] = []
        self.now = 0.0

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


def make(adapter: Any, ledger: Any = None, backoff: Backoff | None = None) -> tuple[ActionExecutor, Sleeps]:
    sleeps = Sleeps()
    executor = ActionExecutor(
        adapter,
        ledger or MemoryLedger(),
        backoff or Backoff(max_attempts=5, initial_delay_s=0.1, jitter=0.0, budget_s=30),
        sleep=sleeps,
        clock=sleeps.clock,
    )
    return executor, sleeps


def test_applies_once_and_a_redelivery_is_a_duplicate() -> None:
    platform = InMemoryPlatform()
    executor, _ = make(platform)
    first = run(executor.execute(ACTION))
    again = run(executor.execute(ACTION))
    assert (first.status, first.attempts) == (ExecutionStatus.applied, 1)
    assert again.status is ExecutionStatus.duplicate
    assert platform.applied == [ACTION]
    assert executor.metrics.applied == 1 and executor.metrics.duplicates == 1


def test_transient_failures_are_retried_with_backoff_then_succeed() -> None:
    platform = InMemoryPlatform(flaky={"lookup_order": 3})
    executor, sleeps = make(platform)
    execution = run(executor.execute(ACTION))
    assert (execution.status, execution.attempts) == (ExecutionStatus.applied, 4)
    assert sleeps.waits == pytest.approx([0.1, 0.2, 0.4])
    assert platform.calls[ACTION.action_id] == 4 and len(platform.applied) == 1


def test_retries_stop_at_max_attempts_and_fail() -> None:
    platform = InMemoryPlatform(flaky={"lookup_order": 99})
    executor, sleeps = make(platform, backoff=Backoff(max_attempts=3, initial_delay_s=0.1, jitter=0.0))
    execution = run(executor.execute(ACTION))
    assert (execution.status, execution.attempts, execution.status_code) == (ExecutionStatus.failed, 3, 503)
    assert execution.error.startswith("gave up after 3 attempt(s)")
    assert len(sleeps.waits) == 2 and platform.applied == []


def test_retries_stop_when_the_next_wait_would_pass_the_budget() -> None:
    backoff = Backoff(max_attempts=50, initial_delay_s=1.0, multiplier=2.0, max_delay_s=100, budget_s=10, jitter=0.0)
    executor, sleeps = make(InMemoryPlatform(flaky={"lookup_order": 99}), backoff=backoff)
    execution = run(executor.execute(ACTION))
    assert sleeps.waits == [1.0, 2.0, 4.0]  # 1 + 2 + 4 = 7; another 8 would end at 15 > 10
    assert execution.attempts == 4 and execution.status is ExecutionStatus.failed


def test_a_permanent_refusal_is_not_retried() -> None:
    executor, sleeps = make(InMemoryPlatform(refuse={"lookup_order": 409}))
    execution = run(executor.execute(ACTION))
    assert (execution.status, execution.attempts, execution.status_code) == (ExecutionStatus.failed, 1, 409)
    assert execution.error.startswith("refused") and "refused" in execution.excerpt
    assert sleeps.waits == [] and execution.needs_operator


def test_a_failure_is_recorded_only_when_settled_and_then_redelivery_is_a_duplicate() -> None:
    ledger = MemoryLedger()
    executor, _ = make(InMemoryPlatform(refuse={"lookup_order": 422}), ledger)
    failed = run(executor.execute(ACTION))
    assert ledger.entries[ACTION.action_id][0] is ActionStatus.claimed
    # Not settled yet (say the failure records were not acknowledged): the retry reuses the outcome.
    retried = run(executor.execute(ACTION))
    assert retried == failed
    run(executor.settle(retried))
    assert ledger.entries[ACTION.action_id][0] is ActionStatus.failed
    assert run(executor.execute(ACTION)).status is ExecutionStatus.duplicate


def test_a_claim_left_by_a_stopped_executor_is_an_unknown_outcome_for_an_operator() -> None:
    ledger = MemoryLedger()
    run(ledger.claim(ACTION.action_id, "s1", "lookup_order"))  # another process claimed, then died
    platform = InMemoryPlatform()
    executor, _ = make(platform, ledger)
    execution = run(executor.execute(ACTION))
    assert execution.status is ExecutionStatus.unknown and execution.needs_operator
    assert "outcome unknown" in execution.error and platform.calls[ACTION.action_id] == 0
    run(executor.settle(execution))
    assert run(executor.execute(ACTION)).status is ExecutionStatus.duplicate


def test_an_operator_approving_a_failed_action_is_a_new_attempt() -> None:
    ledger = MemoryLedger()
    platform = InMemoryPlatform(refuse={"lookup_order": 423})
    executor, _ = make(platform, ledger)
    run(executor.settle(run(executor.execute(ACTION))))
    by_operator = executed(executed_by=Executor.operator)
    assert by_operator.action_id == ACTION.action_id and claim_key(by_operator) == ACTION.action_id + ":operator"
    platform.refuse.clear()
    assert run(executor.execute(by_operator)).status is ExecutionStatus.applied
    assert run(executor.execute(by_operator)).status is ExecutionStatus.duplicate


def test_callable_adapters_map_exceptions_and_async_functions() -> None:
    async def flaky(action: Any) -> None:
        raise TransientFailure("busy", 503, retry_after_s=2.0)

    def refuses(action: Any) -> None:
        raise PermanentFailure("no", 400, "bad")

    def crashes(action: Any) -> None:
        raise RuntimeError("bug")

    assert run(CallableAdapter(flaky).apply(ACTION, 1)) == AdapterResult.transient("busy", 503, retry_after_s=2.0)
    assert run(CallableAdapter(refuses).apply(ACTION, 1)) == AdapterResult.permanent("no", 400, "bad")
    executor, sleeps = make(CallableAdapter(crashes), backoff=Backoff(max_attempts=2, jitter=0.0))
    execution = run(executor.execute(ACTION))
    assert execution.status is ExecutionStatus.failed and "RuntimeError: bug" in execution.error
    assert sleeps.waits == [0.2]


def test_store_ledger_is_durable_across_executors(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'feedback.db'}"
    with FeedbackStore.open(url) as store:
        first, _ = make(InMemoryPlatform(), StoreLedger(store))
        assert run(first.execute(ACTION)).status is ExecutionStatus.applied
    with FeedbackStore.open(url) as store:
        platform = InMemoryPlatform()
        second, _ = make(platform, StoreLedger(store))
        assert run(second.execute(ACTION)).status is ExecutionStatus.duplicate
        assert platform.calls[ACTION.action_id] == 0
        assert store.was_applied(ACTION.action_id)


def test_failure_records() -> None:
    executor, _ = make(InMemoryPlatform(refuse={"refund": 422}))
    action = executed(Action(action_type="refund", arguments={"amount": 10.0}))
    execution = run(executor.execute(action))
    failed = action_failed(execution)
    assert isinstance(failed, ActionFailed)
    assert (failed.action_id, failed.status_code, failed.attempts, failed.action) == (
        action.action_id,
        422,
        1,
        action.action,
    )
    codec = AvroCodec()
    assert codec.decode(codec.encode(failed, "actions.failed"), ActionFailed) == failed
    deferral = failure_deferral(execution)
    assert deferral.reason is DeferralReason.execution_failed
    assert deferral.suggestion == action.action and deferral.suggestion_action_id == action.action_id
    assert deferral.deferral_id == failure_deferral_id(action.action_id) == failure_deferral(execution).deferral_id
    assert "HTTP 422" in deferral.detail and deferral.critic_score == action.critic_score


def test_health_and_readiness_pages() -> None:
    from fastapi.testclient import TestClient

    from selective_autonomy.config import Settings
    from selective_autonomy.edges.executor.health import health_app
    from selective_autonomy.edges.executor.runner import ExecutorRunner
    from tests.support.fakes import ListPublisher

    executor, _ = make(InMemoryPlatform())
    run(executor.execute(ACTION))
    runner = ExecutorRunner(Settings(), executor, ListPublisher())
    client = TestClient(health_app(runner))
    health = client.get("/healthz").json()
    assert health["status"] == "ok" and health["applied"] == 1 and health["adapter"] == "in-memory"
    assert client.get("/readyz").status_code == 503
    runner.state.assigned = ["actions.executed:0"]
    assert client.get("/readyz").json() == {"ready": True, "assigned": ["actions.executed:0"]}


def test_metrics_page_counts_what_became_of_the_actions() -> None:
    from fastapi.testclient import TestClient
    from prometheus_client.parser import text_string_to_metric_families

    from selective_autonomy.config import Settings, TelemetrySettings
    from selective_autonomy.edges.executor.health import health_app
    from selective_autonomy.edges.executor.meters import register_executor_meters
    from selective_autonomy.edges.executor.runner import ExecutorRunner
    from selective_autonomy.streams.meters import process_meters
    from tests.support.fakes import ListPublisher

    executor, _ = make(InMemoryPlatform(flaky={"lookup_order": 1}))
    run(executor.execute(ACTION))
    run(executor.execute(ACTION))
    runner = ExecutorRunner(Settings(), executor, ListPublisher())
    runner.state.dead_letters = 2
    meters = process_meters(TelemetrySettings(service_name="executor"))
    register_executor_meters(runner, meters.provider)
    text = TestClient(health_app(runner, meters.exposition)).get("/metrics").text
    values = {
        (s.name, tuple(sorted(s.labels.values()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert values[("selauto_executor_actions_total", ("applied",))] == 1
    assert values[("selauto_executor_actions_total", ("duplicate",))] == 1
    assert values[("selauto_executor_actions_total", ("failed",))] == 0
    assert values[("selauto_executor_attempts_total", ())] == 2
    assert values[("selauto_executor_retries_total", ())] == 1
    assert values[("selauto_dead_letters_total", ("actions.executed",))] == 2
