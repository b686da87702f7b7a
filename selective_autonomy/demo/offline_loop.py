"""The demo's loop without a broker, for benchmarks over many logs and policies.

Past -> policy; present -> offline copilot stage (simulated operators) written to a real feedback
store -> the production :class:`LearningLoop` (critic, certified thresholds, stages) -> future ->
offline selective replay. Only the transport differs from `selauto demo`; the offline replay is
checked against the live one in the integration tests.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel

from selective_autonomy.agents.feedback import proposal_of
from selective_autonomy.config import LearningSettings
from selective_autonomy.demo.autonomy_curve import AutonomyCurve, autonomy_curve
from selective_autonomy.inference.embedded_policy import EmbeddedPolicy
from selective_autonomy.inference.learning import LearningLoop, LearningReport
from selective_autonomy.inference.ngram import NGramPolicy
from selective_autonomy.inference.protocol import Policy
from selective_autonomy.inference.registry import ModelRegistry, ServicePointer
from selective_autonomy.schemas.events import Stage
from selective_autonomy.schemas.process import ProcessSchema
from selective_autonomy.simulator.offline import offline_copilot, offline_replay, with_context
from selective_autonomy.simulator.operator_model import HandlingTimeModel, OperatorModel
from selective_autonomy.simulator.report import ReplayReport
from selective_autonomy.store import FeedbackStore
from selective_autonomy.store.datasets import critic_examples
from selective_autonomy.traces.format import Case
from selective_autonomy.traces.split import chronological_split


class OfflineLoopResult(BaseModel):
    process_id: str
    policy: str
    cases: dict[str, int]
    future_top1: float
    copilot_acceptance: float
    learning: LearningReport
    selective: ReplayReport
    curve: AutonomyCurve | None = None
    seconds: dict[str, float]


def train_policy(kind: str, schema: ProcessSchema, cases: Sequence[Case]) -> EmbeddedPolicy | NGramPolicy:
    if kind == "embedded":
        return EmbeddedPolicy.train(schema, cases)
    if kind == "ngram":
        return NGramPolicy(schema).fit(cases)
    raise ValueError(f"unknown policy kind {kind!r}")


def top1(policy: Policy, cases: Sequence[Case]) -> float:
    events = [case.state_event(i) for case in cases for i in range(len(case.steps))]
    recorded = [step.action for case in cases for step in case.steps]
    if not events:
        return 0.0
    hits = 0
    for start in range(0, len(events), 1024):
        proposals = policy.propose(events[start : start + 1024], top_k=1)
        hits += sum(
            p.top is not None and p.top.action == r
            for p, r in zip(proposals, recorded[start : start + 1024], strict=True)
        )
    return hits / len(events)


def offline_loop(
    schema: ProcessSchema,
    cases: Sequence[Case],
    policy_kind: str,
    learning: LearningSettings,
    *,
    fractions: tuple[float, float, float] = (0.4, 0.3, 0.3),
    operator: OperatorModel | None = None,
    curve_checkpoints: Sequence[int] = (),
    sessions_per_day: float | None = None,
    workdir: Path | None = None,
) -> OfflineLoopResult:
    seconds: dict[str, float] = {}
    train, copilot, future = chronological_split(list(cases), fractions)
    t = time.monotonic()
    policy = train_policy(policy_kind, schema, train)
    seconds["train_policy"] = time.monotonic() - t
    workdir = workdir or Path(tempfile.mkdtemp(prefix="selauto-offline-"))
    registry = ModelRegistry(workdir / "models")
    registry.save_schema(schema)
    meta = policy.train_meta(train)
    policy.save(registry.process_dir(schema.process_id) / "policy" / meta.version, meta)
    registry.publish(schema.process_id, ServicePointer(policy=f"policy/{meta.version}", default_stage=Stage.copilot))

    t = time.monotonic()
    pairs = list(offline_copilot(registry.load(schema.process_id), copilot, operator))
    accepted = sum(1 for _, f in pairs if f.verdict.value == "accepted")
    with FeedbackStore.open(f"sqlite:///{workdir / 'feedback.db'}") as store:
        store.record_proposals([proposal_of(d) for d, _ in pairs])
        store.record_feedbacks([f for _, f in pairs])
        seconds["copilot"] = time.monotonic() - t
        t = time.monotonic()
        report = LearningLoop(registry, store, learning).run(schema.process_id)
        seconds["learning"] = time.monotonic() - t
    t = time.monotonic()
    selective = offline_replay(
        registry.load(schema.process_id),
        future,
        handling=HandlingTimeModel.from_cases(train),
        operator=operator,
        run_id="future",
    )
    seconds["selective"] = time.monotonic() - t
    curve = None
    if curve_checkpoints:
        t = time.monotonic()
        curve = autonomy_curve(
            schema, critic_examples(with_context(pairs)), curve_checkpoints, learning, sessions_per_day
        )
        seconds["time_to_autonomy"] = time.monotonic() - t
    return OfflineLoopResult(
        process_id=schema.process_id,
        policy=policy_kind,
        cases={"train": len(train), "copilot": len(copilot), "future": len(future)},
        future_top1=top1(policy, future),
        copilot_acceptance=accepted / len(pairs) if pairs else 0.0,
        learning=report,
        selective=selective,
        curve=curve,
        seconds={k: round(v, 2) for k, v in seconds.items()},
    )
