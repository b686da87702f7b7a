"""`selauto eval critic`: every critic gated on the same feedback and the same future, next to the
policy's own confidence; a critic that needs a server is held while it is certified and scored."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext

import pytest

from selective_autonomy.config import LearningSettings
from selective_autonomy.demo.critic_eval import embedded_critic, evaluate_critic
from selective_autonomy.inference.datasets import load_log
from selective_autonomy.inference.ngram import NGramPolicy
from selective_autonomy.inference.protocol import Critic, CriticInput, PolicyConfidenceCritic
from selective_autonomy.learning.splits import EvidenceSplits
from selective_autonomy.schemas.process import ProcessSchema
from selective_autonomy.traces.format import Case
from selective_autonomy.traces.split import chronological_split

Parts = tuple[ProcessSchema, NGramPolicy, list[Case], list[Case]]


@pytest.fixture(scope="module")
def helpdesk() -> Parts:
    (process,) = load_log("helpdesk", limit=350)
    train, copilot, future = chronological_split(process.cases, (0.4, 0.3, 0.3))
    return process.schema, NGramPolicy(process.schema).fit(train), copilot, future


def confidence_critic(schema: ProcessSchema, parts: EvidenceSplits) -> AbstractContextManager[Critic]:
    return nullcontext(PolicyConfidenceCritic())


def test_every_critic_is_gated_on_the_same_future_next_to_the_policy_confidence(helpdesk: Parts) -> None:
    schema, policy, copilot, future = helpdesk
    config = LearningSettings(min_calibration_samples=20)
    critics = {"embedded": embedded_critic, "confidence": confidence_critic}
    report = evaluate_critic(schema, policy, copilot, future, config, log="helpdesk", critics=critics)

    assert [gate.name for gate in report.critics] == ["embedded", "confidence"]
    assert report.future_steps == sum(len(case.steps) for case in future)
    assert report.feedback["certify"] > 0 and report.feedback["train"] > report.feedback["certify"]
    embedded, confidence = report.critics
    assert embedded.version.startswith("critic-embedded") and not embedded.version.endswith("-untrained")
    # The policy's confidence as a critic gives the confidence gate's own curve: both read the same steps.
    assert confidence.curve == report.confidence_curve
    for gate in report.critics:
        assert gate.at_certified is not None, f"{gate.name}: nothing certified on {report.feedback}"
        assert gate.certified_thresholds
        comparison = gate.confidence_at_equal_recall
        assert comparison is not None and comparison.recall >= gate.at_certified.recall


def test_a_critic_source_is_held_while_its_critic_is_certified_and_scored(helpdesk: Parts) -> None:
    schema, policy, copilot, future = helpdesk
    calls: list[str] = []

    class Served:
        version = "served-critic"

        def __init__(self) -> None:
            self.up = True

        def score(self, items: Sequence[CriticInput]) -> list[float]:
            assert self.up, "scored after its server stopped"
            calls.append(f"score {len(items)}")
            return [item.signals.probability for item in items]

    @contextmanager
    def served(schema: ProcessSchema, parts: EvidenceSplits) -> Iterator[Critic]:
        calls.append(f"start on {len(parts.train)} train, {len(parts.select)} select")
        critic = Served()
        yield critic
        critic.up = False
        calls.append("stop")

    report = evaluate_critic(schema, policy, copilot, future, LearningSettings(), critics={"served": served})
    assert calls[0].startswith("start on") and calls[-1] == "stop"
    assert len([c for c in calls if c.startswith("score")]) >= 2  # certification, then the future
    (gate,) = report.critics
    assert gate.version == "served-critic" and gate.curve == report.confidence_curve
