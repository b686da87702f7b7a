"""A synthetic support process for the policy tests, and small helpers shared by them.

The next action depends on a field the n-gram baseline cannot see (``priority``), and one action
takes its argument from the screen (``assign(queue=<queue_hint>)``), so the tests can tell a policy
that reads the state from one that only reads the action history.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from selective_autonomy.inference.embedded_policy import EmbeddedConfig, ModelConfig
from selective_autonomy.inference.training import TrainConfig
from selective_autonomy.schemas.event_parts import Action, UIState
from selective_autonomy.schemas.process import ActionSpec, ArgumentSpec, ProcessSchema, UIField, ValueType
from selective_autonomy.traces.format import Case, TraceStep

QUEUES = ["L1", "L2", "L3", "L4"]
START = datetime(2024, 1, 1, tzinfo=UTC)


def synthetic_schema(queues: list[str] | None = None) -> ProcessSchema:
    """Fields ``priority`` (enum) and ``queue_hint`` (string); ``assign`` takes an enum ``queue``."""
    return ProcessSchema(
        process_id="synthetic",
        fields=[
            UIField(name="priority", type=ValueType.enum, enum=["low", "high"]),
            UIField(name="queue_hint", type=ValueType.string),
        ],
        controls=[
            ActionSpec(name="triage"),
            ActionSpec(name="escalate"),
            ActionSpec(name="resolve"),
            ActionSpec(
                name="assign",
                arguments=[ArgumentSpec(name="queue", type=ValueType.enum, enum=queues or QUEUES)],
            ),
        ],
    )


def synthetic_case(index: int, priority: str, queue: str) -> Case:
    """triage -> (escalate if high priority else resolve) -> assign(queue) -> close_chat."""
    started = START + timedelta(hours=index)
    fields = {"priority": priority, "queue_hint": queue}
    actions = [
        Action(action_type="triage"),
        Action(action_type="escalate" if priority == "high" else "resolve"),
        Action(action_type="assign", arguments={"queue": queue}),
        Action(action_type="close_chat"),
    ]
    steps = [
        TraceStep(
            state=UIState(fields=fields, recent_actions=actions[:i], case_started_at=started),
            action=action,
            timestamp=started + timedelta(minutes=i + 1),
        )
        for i, action in enumerate(actions)
    ]
    return Case(
        case_id=f"c{index:04d}", process_id="synthetic", business_cluster="default", started_at=started, steps=steps
    )


def synthetic_cases(n: int, seed: int = 0, queues: list[str] | None = None) -> list[Case]:
    rng = random.Random(seed)
    pool = queues or QUEUES
    return [synthetic_case(i, rng.choice(["low", "high"]), rng.choice(pool)) for i in range(n)]


def fast_config(seed: int = 0, max_epochs: int = 30) -> EmbeddedConfig:
    """A small, quick network; enough for the synthetic process."""
    return EmbeddedConfig(
        model=ModelConfig(action_dim=16, gru_hidden=16, hidden=32, chat_dim=8, numeric_dim=8),
        train=TrainConfig(
            seed=seed, max_epochs=max_epochs, learning_rate=1e-2, patience=5, batch_size=64, progress=False
        ),
    )
