"""The decide agent calls the models off the event loop and defers a batch they do not answer in time."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

from selective_autonomy.agents.decide import DecideAgent
from selective_autonomy.agents.decisions import Decision, DecisionEngine
from selective_autonomy.agents.gate import GateOutcome, SessionProgress
from selective_autonomy.agents.metrics import RuntimeMetrics
from selective_autonomy.config import Settings, WorkerSettings
from selective_autonomy.schemas.event_parts import Action, DeferralReason
from selective_autonomy.schemas.events import OperatorDeferral, UIStateChanged
from selective_autonomy.streams.serialization import AvroCodec
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


def agent(tmp_path: Path, deadline_s: float) -> DecideAgent:
    settings = Settings(data_dir=tmp_path, worker=WorkerSettings(model_deadline_s=deadline_s))
    return DecideAgent(settings, lambda: DecisionEngine({}), AvroCodec(settings.wire_format), RuntimeMetrics())


def test_models_past_the_deadline_defer_the_batch_and_the_loop_keeps_running(tmp_path: Path) -> None:
    decide = agent(tmp_path, deadline_s=0.2)
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
        decisions = await decide._decide_within_deadline(engine, states, {})
        # The call is still hung: the next batch does not queue behind it for a deadline of its own.
        [queued] = await decide._decide_within_deadline(engine, [event("s3", 1)], {})
        assert "still on a call" in queued.gate.detail
        release.set()
        while decide._overdue is not None and not decide._overdue.done():
            await asyncio.sleep(0.01)
        [answered] = await decide._decide_within_deadline(engine, [event("s4", 1)], {})
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
    assert decide.metrics.model_timeouts == 3


def test_models_that_answer_in_time_decide_as_usual(tmp_path: Path) -> None:
    decide = agent(tmp_path, deadline_s=5.0)
    release = threading.Event()
    release.set()
    [decision] = asyncio.run(decide._decide_within_deadline(HangingEngine(release), [event("s1", 1)], {}))
    assert decision.outcome is GateOutcome.execute
    assert decide.metrics.model_timeouts == 0
