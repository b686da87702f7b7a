"""Folding operator feedback into the embedded policy: a new, deterministic, saved version that learns corrections."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from selective_autonomy.inference.embedded_policy import KIND, EmbeddedPolicy, UpdateConfig
from selective_autonomy.schemas.event_parts import Action
from selective_autonomy.schemas.events import UIStateChanged
from selective_autonomy.traces.format import Case

from .support import QUEUES, fast_config, synthetic_case, synthetic_cases, synthetic_schema


@dataclass(frozen=True, slots=True)
class Endorsed:
    """What the feedback store hands over: the state and the action the operator endorsed there."""

    event: UIStateChanged
    action: Action


def endorsed(case: Case) -> list[Endorsed]:
    return [Endorsed(case.state_event(i), step.action) for i, step in enumerate(case.steps)]


def corrected_feedback(n: int, seed: int = 1) -> list[Endorsed]:
    """High-priority cases in which operators now resolve after triage instead of escalating.

    The other steps are accepted suggestions, as a copilot session would record them; the cases
    start after the training cases, as feedback does.
    """
    rng = random.Random(seed)
    examples = []
    for i in range(n):
        for example in endorsed(synthetic_case(500 + i, "high", rng.choice(QUEUES))):
            if example.action.action_type == "escalate":
                example = Endorsed(example.event, Action(action_type="resolve"))
            examples.append(example)
    return examples


def weights(policy: EmbeddedPolicy) -> dict[str, torch.Tensor]:
    return {name: tensor.clone() for name, tensor in policy.net.state_dict().items()}


def top_action(policy: EmbeddedPolicy, event: UIStateChanged) -> Action:
    top = policy.propose([event], top_k=1)[0].top
    assert top is not None
    return top.action


@pytest.fixture(scope="module")
def base() -> EmbeddedPolicy:
    cases = synthetic_cases(160)
    policy = EmbeddedPolicy.train(synthetic_schema(), cases, fast_config())
    policy.meta = policy.train_meta(cases)
    return policy


@pytest.fixture(scope="module")
def feedback() -> list[Endorsed]:
    return corrected_feedback(40)


@pytest.fixture(scope="module")
def updated(base: EmbeddedPolicy, feedback: list[Endorsed]) -> EmbeddedPolicy:
    return base.updated_with(feedback)


def test_update_is_a_new_version_and_leaves_the_original_untouched(
    base: EmbeddedPolicy, feedback: list[Endorsed]
) -> None:
    before = weights(base)
    version = base.version
    new = base.updated_with(feedback)
    assert new is not base and new.net is not base.net
    assert base.version == version and new.version != version
    assert new.version.startswith(KIND)
    assert all(torch.equal(before[k], v) for k, v in base.net.state_dict().items())
    assert not all(torch.equal(before[k], v) for k, v in new.net.state_dict().items())
    # What the indices mean is the base's.
    assert new.encoder is base.encoder
    assert new.tokens == base.tokens and new.templates == base.templates
    assert new.meta is not None and base.meta is not None
    assert new.meta.params["base_version"] == version
    assert new.meta.params["feedback_examples"] == len(feedback)
    assert new.meta.params["update_config"] == UpdateConfig().model_dump(mode="json")
    assert new.meta.train_examples == base.meta.train_examples + len(feedback)
    assert new.meta.train_to == base.meta.train_to


def test_update_learns_a_correction(base: EmbeddedPolicy, updated: EmbeddedPolicy) -> None:
    probe = synthetic_case(999, "high", "L3")
    after_triage = probe.state_event(1)
    assert top_action(base, after_triage) == Action(action_type="escalate")
    assert top_action(updated, after_triage) == Action(action_type="resolve")
    # The rest of what it knew still holds: the queue is copied from the screen.
    assert top_action(updated, probe.state_event(2)) == Action(action_type="assign", arguments={"queue": "L3"})
    assert top_action(updated, synthetic_case(998, "low", "L1").state_event(1)) == Action(action_type="resolve")


def test_update_is_deterministic_with_the_seed(base: EmbeddedPolicy) -> None:
    feedback = corrected_feedback(10)
    config = UpdateConfig(max_epochs=3, seed=7)
    first, second = base.updated_with(feedback, config), base.updated_with(feedback, config)
    other = base.updated_with(feedback, config.model_copy(update={"seed": 8}))
    # The same examples in another order: the hold-out is chronological, so nothing changes.
    shuffled = base.updated_with(list(reversed(feedback)), config)
    a, b, c, d = (weights(p) for p in (first, second, other, shuffled))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert all(torch.equal(a[k], d[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_update_save_load_round_trip(base: EmbeddedPolicy, updated: EmbeddedPolicy, tmp_path: Path) -> None:
    assert updated.meta is not None
    updated.save(tmp_path, updated.meta)
    loaded = EmbeddedPolicy.load(tmp_path, updated.schema)
    assert loaded.meta == updated.meta
    assert loaded.version == updated.version
    assert loaded.meta.params["base_version"] == base.version
    events = [c.state_event(i) for c in synthetic_cases(10, seed=5) for i in range(4)]
    assert loaded.propose(events, top_k=3) == updated.propose(events, top_k=3)


def test_rejected_and_untemplated_examples_are_counted(base: EmbeddedPolicy) -> None:
    event = synthetic_case(700, "low", "L2").state_event(2)
    examples = [
        *corrected_feedback(3),
        Endorsed(event, Action(action_type="assign", arguments={"queue": "BOGUS"})),  # outside the enum
        Endorsed(event, Action(action_type="no_such_control")),
        # Valid, but a constant queue the screen does not show is no template of the base.
        Endorsed(event, Action(action_type="assign", arguments={"queue": "L4"})),
    ]
    new = base.updated_with(examples, UpdateConfig(max_epochs=1))
    assert new.meta is not None
    assert new.meta.params["feedback_examples"] == len(examples)
    assert new.meta.params["rejected_examples"] == 2
    assert new.meta.params["untemplated_examples"] == 1
    assert new.dropped_examples == 2
    assert new.templates == base.templates


def test_update_with_nothing_usable_keeps_the_weights(base: EmbeddedPolicy) -> None:
    event = synthetic_case(701, "low", "L2").state_event(0)
    new = base.updated_with([Endorsed(event, Action(action_type="no_such_control"))])
    assert new.version != base.version and new.report is None
    before, after = weights(base), weights(new)
    assert all(torch.equal(before[k], after[k]) for k in before)
