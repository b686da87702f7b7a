"""The first policy of a process, from recorded traces: the rule on hand-made evidence, and the loop
that reads the store's trace table, trains, serves and stages it (no Kafka)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import pytest

from selective_autonomy.config import LearningSettings
from selective_autonomy.inference.ngram import NGramPolicy
from selective_autonomy.inference.registry import WHOLE_PROCESS, HandStage, ModelRegistry, Pause, ServicePointer
from selective_autonomy.learning.first_policy import (
    FirstPolicyInput,
    TrainedPolicy,
    plan_first_policy,
    split_cases,
    waiting_for,
)
from selective_autonomy.learning.loop import LearningLoop
from selective_autonomy.learning.recorded import cases_from_recorded
from selective_autonomy.schemas.event_parts import Stage
from selective_autonomy.schemas.events import StageChanged
from selective_autonomy.schemas.process import BusinessCluster, ProcessSchema
from selective_autonomy.store.models import ModelKind
from selective_autonomy.store.repository import FeedbackStore
from selective_autonomy.traces.format import Case
from tests.factories import BILLING as SCHEMA
from tests.factories import T0, operator_session, operator_sessions, recorded

CONFIG = LearningSettings(first_policy_cases=20, first_policy_eval_fraction=0.25, trace_idle_s=3600)
PROCESS = SCHEMA.model_copy(update={"business_clusters": [*SCHEMA.business_clusters, BusinessCluster(id="lab")]})


class RecordingTrainer:
    """An n-gram trainer that remembers the cases it was given."""

    def __init__(self) -> None:
        self.seen: list[Case] = []

    def __call__(self, schema: ProcessSchema, cases: Sequence[Case]) -> TrainedPolicy:
        self.seen = list(cases)
        return NGramPolicy(schema).fit(cases)


def cases(count: int) -> list[Case]:
    return cases_from_recorded([recorded(states) for states in operator_sessions(count, T0)])


def test_waits_for_enough_complete_cases_and_never_replaces_a_policy() -> None:
    none = ServicePointer()
    assert waiting_for(none, 19, CONFIG) == "19 of 20 complete cases recorded: no first policy yet"
    assert waiting_for(none, 20, CONFIG) is None
    served = ServicePointer(policy="policy/p1")
    assert waiting_for(served, 500, CONFIG) == "a policy is in service: no first policy to train"

    trainer = RecordingTrainer()
    for pointer, complete in ((none, 19), (served, 40)):
        plan = plan_first_policy(FirstPolicyInput(PROCESS, pointer, complete, cases(40)), CONFIG, trainer)
        assert plan.pointer == pointer and not plan.artefacts and not plan.decisions
        assert plan.notes == [waiting_for(pointer, complete, CONFIG)]
    assert trainer.seen == []  # nothing trained
    # Enough counted, but fewer than two usable cases: nothing to train on and measure.
    plan = plan_first_policy(FirstPolicyInput(PROCESS, none, 20, cases(1)), CONFIG, trainer)
    assert not plan.artefacts and "too few" in plan.notes[0]


def test_trains_on_the_older_cases_measures_on_the_newest_and_moves_logging_clusters() -> None:
    recorded_cases = cases(40)
    trainer = RecordingTrainer()
    # 'vip' was put in copilot by hand: only the clusters still in logging move.
    pointer = ServicePointer(stages={"vip": Stage.copilot})
    plan = plan_first_policy(FirstPolicyInput(PROCESS, pointer, 20, recorded_cases), CONFIG, trainer)

    assert [c.case_id for c in trainer.seen] == [c.case_id for c in recorded_cases[:30]]
    [artefact] = plan.artefacts
    assert artefact.kind is ModelKind.policy and artefact.path == f"policy/{artefact.meta.version}"
    assert artefact.meta.train_cases == 30 and artefact.meta.train_to == recorded_cases[29].started_at
    # Of the newest 10 cases' 25 steps, the n-gram (action history only, blind to the plan field)
    # misses half of the 10 choices between invoicing and closing after a lookup.
    assert artefact.meta.metrics["trace_top1"] == pytest.approx(0.8)
    assert artefact.meta.metrics["trace_eval_cases"] == 10
    assert plan.pointer.policy == artefact.path and plan.policy_version == artefact.meta.version
    assert plan.pointer.stages == {"retail": Stage.copilot, "vip": Stage.copilot, "lab": Stage.copilot}
    assert sorted(plan.decisions) == ["lab", "retail"]
    reason = plan.decisions["retail"].reason
    assert reason.startswith(f"first policy {artefact.meta.version} trained on 30 recorded cases (75 steps)")
    assert "top-1 80.0% on the newest 10" in reason


def test_split_never_leaves_a_part_empty() -> None:
    two = cases(2)
    assert [len(p) for p in split_cases(two, 0.2)] == [1, 1]
    assert [len(p) for p in split_cases(two, 0.9)] == [1, 1]
    assert [len(p) for p in split_cases(cases(10), 0.2)] == [8, 2]
    older, newer = split_cases(list(reversed(cases(10))), 0.2)
    assert max(c.started_at for c in older) < min(c.started_at for c in newer)


def test_the_loop_trains_serves_and_stages_the_first_policy_from_the_trace_table(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "models")
    registry.save_schema(PROCESS)
    changes: list[list[StageChanged]] = []
    with FeedbackStore.open(f"sqlite:///{tmp_path / 'feedback.db'}") as store:
        loop = LearningLoop(registry, store, CONFIG, changes.append)  # the default embedded policy
        sessions = operator_sessions(19, T0)
        for states in sessions:
            store.append_traces(states)
        open_session = operator_session("open", T0 + timedelta(minutes=50), closed=False)
        store.append_traces(open_session)
        waiting = loop.run("billing")
        assert not waiting.retrained and waiting.notes == ["19 of 20 complete cases recorded: no first policy yet"]
        assert registry.pointer("billing") == ServicePointer()  # current.json untouched

        [late] = operator_sessions(1, T0 + timedelta(hours=1), prefix="late")
        store.append_traces(late)
        report = loop.first_policy("billing")
        assert report.retrained and report.policy_promoted and report.trace_cases == 20
        pointer = registry.pointer("billing")
        assert pointer.policy == f"policy/{report.policy_version}" and pointer.revision == 1
        assert {pointer.stage(c.id) for c in PROCESS.business_clusters} == {Stage.copilot}
        models = registry.load("billing")  # what a worker hot-reloads
        assert models.policy.version == report.policy_version
        [version] = store.model_versions(ModelKind.policy, "billing")
        assert version.promoted and version.metrics["trace_eval_cases"] == 5
        [transition] = store.stage_history("billing", "retail")
        assert transition.to_stage is Stage.copilot and transition.reason.startswith("first policy ")
        [published] = changes
        assert sorted((c.business_cluster, c.from_stage, c.to_stage) for c in published) == [
            (c, Stage.logging, Stage.copilot) for c in ("lab", "retail", "vip")
        ]
        again = loop.first_policy("billing")
        assert not again.retrained and again.notes == ["a policy is in service: no first policy to train"]
        assert registry.pointer("billing").revision == 1


PAUSE = Pause(reason="incident 42", by="alice", at=T0)


def test_a_pause_or_a_stage_set_by_hand_keeps_clusters_in_logging_while_the_first_policy_serves() -> None:
    held_by_hand = HandStage(stage=Stage.logging, reason="not yet", by="bob", at=T0)
    pointer = ServicePointer(paused={"retail": PAUSE}, manual={"vip": held_by_hand})
    plan = plan_first_policy(FirstPolicyInput(PROCESS, pointer, 20, cases(40)), CONFIG, RecordingTrainer())
    assert plan.pointer.policy is not None and plan.pointer.paused == pointer.paused
    assert {c.id: plan.pointer.stage(c.id) for c in PROCESS.business_clusters} == {
        "retail": Stage.logging,
        "vip": Stage.logging,
        "lab": Stage.copilot,
    }
    assert sorted(plan.decisions) == ["lab"] and sorted(plan.held) == ["retail", "vip"]
    assert "retail: would move logging -> copilot; held: the cluster is paused by alice (incident 42)" in plan.notes
    assert any(n.startswith("vip: would move logging -> copilot; held: stage set by hand by bob") for n in plan.notes)


def test_a_pause_issued_while_the_first_policy_trains_holds_it_and_its_lifting_lets_it_move(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "models")
    registry.save_schema(PROCESS)
    registry.publish("billing", ServicePointer())
    changes: list[list[StageChanged]] = []

    class PausingTrainer(RecordingTrainer):
        """A person pauses the process while the first training runs."""

        def __call__(self, schema: ProcessSchema, cases: Sequence[Case]) -> TrainedPolicy:
            if not self.seen:
                registry.update("billing", lambda p: p.model_copy(update={"paused": {WHOLE_PROCESS: PAUSE}}))
            return super().__call__(schema, cases)

    with FeedbackStore.open(f"sqlite:///{tmp_path / 'feedback.db'}") as store:
        loop = LearningLoop(registry, store, CONFIG, changes.append, trainer=PausingTrainer())
        for states in operator_sessions(20, T0):
            store.append_traces(states)
        report = loop.first_policy("billing")  # planned on revision 1, refused, planned again on 2
        pointer = registry.pointer("billing")
        assert report.policy_promoted and pointer.policy == f"policy/{report.policy_version}"
        assert pointer.paused == {WHOLE_PROCESS: PAUSE} and pointer.revision == 3
        assert {pointer.stage(c.id) for c in PROCESS.business_clusters} == {Stage.logging}
        assert changes == [] and "retail: would move logging -> copilot; held: the process is paused" in " ".join(
            report.notes
        )
        assert loop.first_policy("billing").stage_changes == []  # still paused: nothing to do

        registry.update("billing", lambda p: p.model_copy(update={"paused": {}}))
        moved = loop.first_policy("billing")  # the next trace check after the pause is lifted
        assert sorted((c.business_cluster, c.to_stage) for c in moved.stage_changes) == [
            (c, Stage.copilot) for c in ("lab", "retail", "vip")
        ]
        assert {registry.pointer("billing").stage(c.id) for c in PROCESS.business_clusters} == {Stage.copilot}
        assert [len(c) for c in changes] == [3]
        again = loop.first_policy("billing")
        assert again.stage_changes == [] and again.notes == ["a policy is in service: no first policy to train"]
