"""The learning loop reads a bounded window: with more feedback stored than ``window_feedback``, a run
reads exactly the newest window, and a monitor-only run reads no feedback window at all.

bench/bench_learning_cost.py measures what that bounds on PostgreSQL at 10k to 1M records.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from selective_autonomy.config import LearningSettings
from selective_autonomy.inference.ngram import NGramPolicy
from selective_autonomy.inference.registry import ModelRegistry, ServicePointer
from selective_autonomy.learning.loop import LearningLoop
from selective_autonomy.schemas.event_parts import Action, Stage, UIState
from selective_autonomy.simulator.offline import record_copilot
from selective_autonomy.store.repository import FeedbackStore
from selective_autonomy.traces.format import Case, TraceStep
from tests.factories import BILLING as SCHEMA

WINDOW = 100  # the smallest window the settings allow
START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
FLOW = (
    Action(action_type="lookup_order", arguments={"order_id": "A1"}),
    Action(action_type="send_invoice"),
    Action(action_type="close_chat"),
)


def case(i: int) -> Case:
    """Three steps, one case an hour: feedback times are distinct and ordered by case."""
    started = START + timedelta(hours=i)
    steps = [
        TraceStep(
            state=UIState(fields={"plan": "pro"}, recent_actions=list(FLOW[:n]), case_started_at=started),
            action=action,
            timestamp=started + timedelta(minutes=n + 1),
        )
        for n, action in enumerate(FLOW)
    ]
    return Case(case_id=f"c{i:03d}", process_id="billing", business_cluster="retail", started_at=started, steps=steps)


def copilot_registry(tmp_path: Path, trained_on: list[Case]) -> ModelRegistry:
    """A registry serving an n-gram policy fitted on ``trained_on``, every cluster in copilot."""
    registry = ModelRegistry(tmp_path / "models")
    registry.save_schema(SCHEMA)
    policy = NGramPolicy(SCHEMA).fit(trained_on)
    meta = policy.train_meta(trained_on)
    policy.save(registry.process_dir("billing") / "policy" / meta.version, meta)
    registry.publish("billing", ServicePointer(policy=f"policy/{meta.version}", default_stage=Stage.copilot))
    return registry


def test_a_run_reads_exactly_the_newest_window(tmp_path: Path) -> None:
    cases = [case(i) for i in range(90)]  # 270 answers: 2.7 windows
    registry = copilot_registry(tmp_path, cases[:10])
    with FeedbackStore.open(f"sqlite:///{tmp_path / 'store.db'}") as store:
        stored = record_copilot(registry.load("billing"), cases, store)
        assert stored == 270 > WINDOW
        loop = LearningLoop(registry, store, LearningSettings(window_feedback=WINDOW))
        evidence = loop.gather("billing")
        newest = sorted(store.feedback_with_context(process_id="billing"), key=lambda r: r.feedback.given_at)[-WINDOW:]
        assert evidence.feedback_read == WINDOW
        assert [e.feedback_id for e in evidence.examples] == [r.feedback.feedback_id for r in newest]
        assert len(evidence.policy_examples) <= WINDOW
        # The monitor-only run reads judged unattended steps only (none here): no feedback window.
        assert loop.gather("billing", retrain=False).feedback_read == 0


def test_a_run_times_its_steps_and_counts_what_it_read(tmp_path: Path) -> None:
    # bench/bench_learning_cost.py reports these step times: the loop measures itself, unpatched.
    cases = [case(i) for i in range(90)]
    registry = copilot_registry(tmp_path, cases[:10])
    with FeedbackStore.open(f"sqlite:///{tmp_path / 'store.db'}") as store:
        record_copilot(registry.load("billing"), cases, store)
        loop = LearningLoop(registry, store, LearningSettings(window_feedback=WINDOW))
        loop.run("billing")
        steps = loop.times.steps
        assert {"gather", "feedback_with_context", "update_policy", "for_policy", "choose_critic", "apply_plan"} <= set(
            steps
        )
        assert steps["feedback_with_context"].rows == WINDOW
        assert all(step.calls == 1 and step.s > 0 for step in steps.values())
        assert steps["gather"].s >= steps["feedback_with_context"].s  # the read is part of gathering
        loop.run("billing")
        assert steps["gather"].calls == 2 and steps["feedback_with_context"].rows == 2 * WINDOW
