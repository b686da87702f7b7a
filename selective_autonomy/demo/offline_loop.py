"""The demo's loop without a broker, for benchmarks over many logs, policies, targets and gates.

Past -> policy; present -> offline copilot stage (simulated operators) written to a real feedback
store -> the production learning loop (critic choice, certification, stages) -> future -> offline
selective replay in which operators answer deferrals, audit a sample of unattended steps and work
the exploration holdout, while the same loop keeps watching (monitor after each judged unattended
step) and relearning (every ``relearn_every`` answers). Only the transport differs from
`selauto demo`; the offline replay is checked against the live one in the integration tests.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from selective_autonomy.agents.feedback import proposal_of
from selective_autonomy.config import LearningSettings
from selective_autonomy.demo.autonomy_curve import AutonomyCurve, autonomy_curve
from selective_autonomy.errors import SelautoError
from selective_autonomy.inference.embedded_policy import EmbeddedPolicy
from selective_autonomy.inference.ngram import NGramPolicy
from selective_autonomy.inference.protocol import Policy
from selective_autonomy.inference.registry import ModelRegistry, ServicePointer
from selective_autonomy.learning.apply import LearningReport
from selective_autonomy.learning.evidence import critic_examples
from selective_autonomy.learning.loop import LearningLoop
from selective_autonomy.schemas.event_parts import Stage, Verdict
from selective_autonomy.schemas.events import CopilotFeedback, OperatorDeferral
from selective_autonomy.schemas.process import ProcessSchema
from selective_autonomy.simulator.offline import OfflineLearning, offline_copilot, offline_replay, with_context
from selective_autonomy.simulator.operator_model import HandlingTimeModel, OperatorModel
from selective_autonomy.simulator.report import ReplayReport
from selective_autonomy.store import FeedbackStore
from selective_autonomy.traces.format import Case
from selective_autonomy.traces.split import chronological_split

CopilotPairs = list[tuple[OperatorDeferral, CopilotFeedback]]


class OfflineLoopConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    fractions: tuple[float, float, float] = (0.4, 0.3, 0.3)
    audit_rate: float = Field(default=0.05, ge=0, le=1, description="Share of unattended steps audited.")
    relearn_every: int = Field(default=300, ge=1, description="Answers between two full learning runs.")
    concurrency: int = Field(default=64, ge=1, description="Future sessions in flight at once.")
    watch: bool = Field(default=True, description="Run the precision monitor after each judged unattended step.")


class OfflineLoopResult(BaseModel):
    process_id: str
    policy: str
    cases: dict[str, int]
    future_top1: float
    copilot_acceptance: float
    learning: LearningReport
    relearning: list[LearningReport] = Field(default_factory=list)
    selective: ReplayReport
    curve: AutonomyCurve | None = None
    seconds: dict[str, float]


def train_policy(kind: str, schema: ProcessSchema, cases: Sequence[Case]) -> EmbeddedPolicy | NGramPolicy:
    """A policy of ``kind`` (embedded or ngram) trained on ``cases``, with the defaults of its kind."""
    if kind == "embedded":
        return EmbeddedPolicy.train(schema, cases)
    if kind == "ngram":
        return NGramPolicy(schema).fit(cases)
    raise SelautoError(f"unknown policy kind {kind!r} (embedded or ngram)")


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
    config: OfflineLoopConfig | None = None,
    operator: OperatorModel | None = None,
    policy: EmbeddedPolicy | NGramPolicy | None = None,
    copilot_pairs: CopilotPairs | None = None,
    curve_checkpoints: Sequence[int] = (),
    sessions_per_day: float | None = None,
    workdir: Path | None = None,
) -> OfflineLoopResult:
    """One process through the whole loop; ``policy`` and ``copilot_pairs`` may be passed in so
    that several runs (targets, gates) share the same trained policy and copilot feedback."""
    config = config or OfflineLoopConfig()
    seconds: dict[str, float] = {}
    train, copilot, future = chronological_split(list(cases), config.fractions)
    t = time.monotonic()
    if policy is None:
        policy = train_policy(policy_kind, schema, train)
    seconds["train_policy"] = time.monotonic() - t
    workdir = workdir or Path(tempfile.mkdtemp(prefix="selauto-offline-"))
    registry = ModelRegistry(workdir / "models")
    registry.save_schema(schema)
    meta = policy.train_meta(train)
    policy.save(registry.process_dir(schema.process_id) / "policy" / meta.version, meta)
    registry.publish(schema.process_id, ServicePointer(policy=f"policy/{meta.version}", default_stage=Stage.copilot))

    t = time.monotonic()
    if copilot_pairs is None:
        copilot_pairs = list(offline_copilot(registry.load(schema.process_id), copilot, operator))
    pairs = copilot_pairs
    accepted = sum(1 for _, f in pairs if f.verdict is Verdict.accepted)
    with FeedbackStore.open(f"sqlite:///{workdir / 'feedback.db'}") as store:
        store.record_proposals([proposal_of(d) for d, _ in pairs])
        store.record_feedbacks([f for _, f in pairs])
        seconds["copilot"] = time.monotonic() - t
        t = time.monotonic()
        loop = LearningLoop(registry, store, learning)
        first = loop.run(schema.process_id)
        seconds["learning"] = time.monotonic() - t
        t = time.monotonic()
        online = OfflineLearning(registry, store, loop, relearn_every=config.relearn_every, watch=config.watch)
        selective = offline_replay(
            registry.load(schema.process_id),
            future,
            handling=HandlingTimeModel.from_cases(train),
            operator=operator,
            concurrency=config.concurrency,
            run_id="future",
            audit_rate=config.audit_rate,
            learning=online,
        )
        seconds["selective"] = time.monotonic() - t
    curve = None
    if curve_checkpoints:
        t = time.monotonic()
        curve = autonomy_curve(
            schema, policy, critic_examples(with_context(pairs)), curve_checkpoints, learning, sessions_per_day
        )
        seconds["time_to_autonomy"] = time.monotonic() - t
    return OfflineLoopResult(
        process_id=schema.process_id,
        policy=policy_kind,
        cases={"train": len(train), "copilot": len(copilot), "future": len(future)},
        future_top1=top1(policy, future),
        copilot_acceptance=accepted / len(pairs) if pairs else 0.0,
        learning=first,
        relearning=online.reports,
        selective=selective,
        curve=curve,
        seconds={k: round(v, 2) for k, v in seconds.items()},
    )
