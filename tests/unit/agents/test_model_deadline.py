"""The decide agent's model calls (:class:`ModelDeadline`): models that use a server run off the event
loop and a batch they do not answer in time is deferred; in-process models run on the loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping, Sequence
from dataclasses import replace

from selective_autonomy.agents.decisions import Decision, DecisionEngine
from selective_autonomy.agents.gate import GateOutcome, SessionProgress
from selective_autonomy.agents.metrics import RuntimeMetrics
from selective_autonomy.agents.model_deadline import ModelDeadline
from selective_autonomy.config import DEFAULT_TOP_K, WorkerSettings
from selective_autonomy.inference.protocol import (
    Critic,
    CriticInput,
    Policy,
    PolicyConfidenceCritic,
    Proposal,
    computes_locally,
)
from selective_autonomy.schemas.event_parts import Action, DeferralReason
from selective_autonomy.schemas.events import OperatorDeferral, UIStateChanged
from tests.factories import event
from tests.support.models import models

LOOKUP = Action(action_type="lookup_order", arguments={"order_id": "A1"})


class HangingEngine(DecisionEngine):
    """An engine whose models do not answer until released (a hung inference server)."""

    def __init__(self, release: threading.Event) -> None:
        super().__init__({"billing": models(LOOKUP)})
        self.release = release

    def decide(self, events: Sequence[UIStateChanged], progress: Mapping[str, SessionProgress]) -> list[Decision]:
        self.release.wait(10)
        return super().decide(events, progress)


def calls(deadline_s: float) -> ModelDeadline:
    return ModelDeadline(WorkerSettings(model_deadline_s=deadline_s), RuntimeMetrics())


def test_models_past_the_deadline_defer_the_batch_and_the_loop_keeps_running() -> None:
    deadline = calls(deadline_s=0.2)
    release = threading.Event()
    states = [event("s1", 1), event("s2", 1)]

    async def scenario() -> tuple[list[Decision], int]:
        ticks = 0

        async def heartbeat() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        beating = asyncio.create_task(heartbeat())
        engine = HangingEngine(release)
        decisions = await deadline.decide(engine, states, {})
        # The call is still hung: the next batch does not queue behind it for a deadline of its own.
        [queued] = await deadline.decide(engine, [event("s3", 1)], {})
        assert "still on a call" in queued.gate.detail
        release.set()
        while deadline.overdue:
            await asyncio.sleep(0.01)
        [answered] = await deadline.decide(engine, [event("s4", 1)], {})
        assert answered.outcome is GateOutcome.execute  # served again once the models answer
        beating.cancel()
        return decisions, ticks

    decisions, ticks = asyncio.run(scenario())
    assert ticks > 1  # the event loop (heartbeats, commits) ran while the models hung
    assert [d.outcome for d in decisions] == [GateOutcome.defer, GateOutcome.defer]
    for decision, state in zip(decisions, states, strict=True):
        record = decision.output()
        assert isinstance(record, OperatorDeferral)
        assert record.reason is DeferralReason.model_unavailable
        assert "within 0.2 s" in record.detail
        assert record.session_id == state.session_id and record.suggestion is None
    assert deadline.metrics.model_timeouts == 3


def test_models_that_answer_in_time_decide_as_usual() -> None:
    deadline = calls(deadline_s=5.0)
    release = threading.Event()
    release.set()
    [decision] = asyncio.run(deadline.decide(HangingEngine(release), [event("s1", 1)], {}))
    assert decision.outcome is GateOutcome.execute
    assert deadline.metrics.model_timeouts == 0


class RecordingPolicy:
    """A policy that notes the thread each call runs on."""

    def __init__(self, inner: Policy, local: bool) -> None:
        self.inner = inner
        self.computes_locally = local
        self.threads: list[str] = []

    @property
    def version(self) -> str:
        return self.inner.version

    def propose(self, events: Sequence[UIStateChanged], top_k: int = DEFAULT_TOP_K) -> list[Proposal]:
        self.threads.append(threading.current_thread().name)
        return self.inner.propose(events, top_k)


class SayingCritic:
    """A critic that says whether it computes locally."""

    def __init__(self, inner: Critic, local: bool) -> None:
        self.inner = inner
        self.computes_locally = local
        self.version = inner.version

    def score(self, items: Sequence[CriticInput]) -> list[float]:
        return self.inner.score(items)


def test_in_process_models_run_on_the_loop_and_server_models_off_it() -> None:
    deadline = calls(deadline_s=5.0)
    placed = {}
    for local in (True, False):
        served = models(LOOKUP)
        policy = RecordingPolicy(served.policy, local)
        critic = SayingCritic(served.critic, local)
        engine = DecisionEngine({"billing": replace(served, policy=policy, critic=critic)})
        assert engine.computes_locally([event("s1", 1)]) is local
        [decision] = asyncio.run(deadline.decide(engine, [event("s1", 1)], {}))
        assert decision.outcome is GateOutcome.execute
        placed[local] = policy.threads
    assert placed[True] == [threading.main_thread().name]  # on the loop (asyncio.run's thread)
    assert placed[False][0].startswith("decide-models")


def test_the_shipped_models_say_they_compute_locally() -> None:
    from selective_autonomy.inference.critic import EmbeddedCritic
    from selective_autonomy.inference.embedded_policy import EmbeddedPolicy
    from selective_autonomy.inference.llm.critic import LLMCritic
    from selective_autonomy.inference.llm.policy import LLMPolicy
    from selective_autonomy.inference.ngram import NGramPolicy

    for local in (EmbeddedPolicy, EmbeddedCritic, NGramPolicy, PolicyConfidenceCritic):
        assert computes_locally(local), local  # type: ignore[arg-type]
    for remote in (LLMPolicy, LLMCritic):
        assert not computes_locally(remote), remote  # type: ignore[arg-type]
