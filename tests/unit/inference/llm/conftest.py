"""Fixtures for the LLM tests: a Helpdesk slice, a small schema with arguments, a mock vLLM server.

Nothing here touches the network or starts vLLM: the server is an ``httpx.MockTransport``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from selective_autonomy.schemas.event_parts import Action, UIState
from selective_autonomy.schemas.events import UIStateChanged
from selective_autonomy.schemas.process import ActionSpec, ArgumentSpec, ProcessSchema, UIField, ValueType
from selective_autonomy.traces.datasets import helpdesk_log_path
from selective_autonomy.traces.eventlog import derive_process_schema, iter_cases, read_event_log
from selective_autonomy.traces.format import Case
from selective_autonomy.traces.mapping import load_mapping
from selective_autonomy.traces.split import chronological_order

HELPDESK_SLICE = 30


@dataclass(frozen=True)
class Helpdesk:
    schema: ProcessSchema
    cases: list[Case]

    def events(self, n: int) -> list[UIStateChanged]:
        return [case.state_event(i) for case in self.cases for i in range(len(case.steps))][:n]


@pytest.fixture(scope="session")
def helpdesk() -> Helpdesk:
    table = read_event_log(helpdesk_log_path(), load_mapping("helpdesk"), limit_cases=HELPDESK_SLICE)
    return Helpdesk(derive_process_schema(table), chronological_order(iter_cases(table)))


@pytest.fixture(scope="session")
def refund_schema() -> ProcessSchema:
    """A process whose action has arguments in non-alphabetical order, an enum and a PII argument."""
    return ProcessSchema(
        process_id="refunds",
        fields=[UIField(name="customer_name", pii=True), UIField(name="amount", type=ValueType.number)],
        controls=[
            ActionSpec(
                name="refund",
                arguments=[
                    ArgumentSpec(name="reason", type=ValueType.enum, enum=["late", "damaged"]),
                    ArgumentSpec(name="amount", type=ValueType.number),
                ],
            ),
            ActionSpec(name="escalate"),
        ],
    )


@pytest.fixture
def refund_event() -> UIStateChanged:
    return UIStateChanged(
        session_id="s-1",
        process_id="refunds",
        business_cluster="default",
        state_version=3,
        ui_state=UIState(
            fields={"customer_name": "Ada Lovelace", "amount": 12.5},
            recent_actions=[Action(action_type="escalate")],
        ),
    )


def completion_choice(text: str, token_logprobs: list[float], index: int = 0, **extra: Any) -> dict[str, Any]:
    """One choice as vLLM's completions endpoint sends it (tokens are stand-ins)."""
    return {
        "index": index,
        "text": text,
        "logprobs": {
            "tokens": [f"t{i}" for i in range(len(token_logprobs))],
            "token_logprobs": token_logprobs,
            "top_logprobs": extra.pop("top_logprobs", None),
            "text_offset": list(range(len(token_logprobs))),
        },
        "finish_reason": extra.pop("finish_reason", "stop"),
        **extra,
    }


@dataclass
class MockServer:
    """Answers requests with ``handler`` and records each JSON body it got."""

    handler: Callable[[httpx.Request, dict[str, Any]], httpx.Response]
    requests: list[dict[str, Any]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)

    def transport(self) -> httpx.MockTransport:
        def handle(request: httpx.Request) -> httpx.Response:
            body = json.loads(request.content) if request.content else {}
            self.requests.append(body)
            self.paths.append(request.url.path)
            return self.handler(request, body)

        return httpx.MockTransport(handle)


@pytest.fixture
def mock_server() -> Callable[[Callable[[httpx.Request, dict[str, Any]], httpx.Response]], MockServer]:
    return MockServer


@pytest.fixture(scope="session")
def tiny_sft_config() -> Any:
    from selective_autonomy.inference.llm.sft import SFTConfig

    return SFTConfig(
        epochs=1, max_steps=4, batch_size=8, max_model_len=256, max_new_tokens=48, vocab_size=400, threads=1
    )


@pytest.fixture(scope="session")
def tiny_policy_dir(tmp_path_factory: pytest.TempPathFactory, helpdesk: Helpdesk, tiny_sft_config: Any) -> Path:
    """A tiny policy trained from scratch for a few steps: shared by the SFT, loader and LoRA tests."""
    from selective_autonomy.inference.llm.sft import train_policy

    out = tmp_path_factory.mktemp("llm") / "policy"
    train_policy(helpdesk.cases, helpdesk.schema, out, tiny_sft_config)
    return out
