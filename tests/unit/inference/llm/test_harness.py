"""The harness's one-server-at-a-time routing, with stand-in servers and policies (no vLLM)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from selective_autonomy.inference.llm.harness import LLMHarnessConfig, ServedPolicies, TrainedLLM
from selective_autonomy.inference.protocol import Candidate, ModelUnavailable, Proposal
from selective_autonomy.schemas.event_parts import Action, UIState
from selective_autonomy.schemas.events import UIStateChanged
from selective_autonomy.schemas.process import ProcessSchema


@dataclass
class FakeServer:
    name: str
    log: list[str]
    startup_seconds: float = 1.5

    def stop(self) -> None:
        self.log.append(f"stop {self.name}")


@dataclass
class FakePolicy:
    name: str
    log: list[str]
    batches: list[int] = field(default_factory=list)

    @property
    def version(self) -> str:
        return f"v-{self.name}"

    def propose(self, events: Sequence[UIStateChanged], top_k: int = 5) -> list[Proposal]:
        assert all(e.process_id == self.name for e in events)
        self.batches.append(len(events))
        action = Action(action_type=f"{self.name}-next")
        return [Proposal(candidates=[Candidate(action=action, probability=0.5)], policy_version=self.version)] * len(
            events
        )


class StandInServed(ServedPolicies):
    def __init__(self, trained: dict[str, TrainedLLM], work_dir: Path) -> None:
        super().__init__(trained, LLMHarnessConfig(), work_dir)
        self.log: list[str] = []
        self.policies: dict[str, FakePolicy] = {}

    def _serve(self, trained: TrainedLLM) -> tuple[Any, Any]:
        name = trained.schema.process_id
        self.log.append(f"start {name}")
        self.policies[name] = FakePolicy(name, self.log)
        return FakeServer(name, self.log), self.policies[name]


def _trained(tmp_path: Path, *names: str) -> dict[str, TrainedLLM]:
    return {
        name: TrainedLLM(ProcessSchema(process_id=name), tmp_path / name, f"policy-llm-{name}", 1.0) for name in names
    }


def _event(process_id: str, n: int) -> UIStateChanged:
    return UIStateChanged(
        event_id=f"{process_id}-{n}",
        session_id=f"{process_id}-s{n}",
        process_id=process_id,
        business_cluster="default",
        state_version=1,
        timestamp=datetime(2024, 1, 1, tzinfo=UTC),
        ui_state=UIState(),
    )


def test_grouped_states_start_each_server_once_and_stop_the_previous(tmp_path: Path) -> None:
    events = [_event("a", i) for i in range(3)] + [_event("b", i) for i in range(4)]
    with StandInServed(_trained(tmp_path, "a", "b"), tmp_path) as served:
        first = served.propose(events[:5], top_k=3)  # a batch across the boundary
        second = served.propose(events[5:], top_k=3)
        log = list(served.log)
    assert [p.top.action.action_type for p in first + second if p.top] == ["a-next"] * 3 + ["b-next"] * 4
    assert log == ["start a", "stop a", "start b"]
    assert served.log[-1] == "stop b"  # closed on exit
    assert served.startup_seconds == {"a": 1.5, "b": 1.5}
    assert served.policies["b"].batches == [2, 2]
    assert served.version == "2 versions"


def test_interleaved_states_keep_their_order(tmp_path: Path) -> None:
    events = [_event("a", 0), _event("b", 0), _event("a", 1)]
    with StandInServed(_trained(tmp_path, "a", "b"), tmp_path) as served:
        proposals = served.propose(events)
    assert [p.policy_version for p in proposals] == ["v-a", "v-b", "v-a"]
    assert served.log == ["start a", "stop a", "start b", "stop b", "start a", "stop a"]


def test_a_process_without_a_model_is_unavailable(tmp_path: Path) -> None:
    with StandInServed(_trained(tmp_path, "a"), tmp_path) as served, pytest.raises(ModelUnavailable, match="'z'"):
        served.propose([_event("z", 0)])
