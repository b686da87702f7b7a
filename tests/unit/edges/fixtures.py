"""A small process schema, sample events and a list-backed publisher shared by the edges' unit tests."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from selective_autonomy.edges.errors import NotDelivered
from selective_autonomy.edges.publisher import Delivered
from selective_autonomy.edges.records import Outgoing
from selective_autonomy.schemas.event_parts import Action, ActionTier, Executor
from selective_autonomy.schemas.events import ActionExecuted, action_id_for
from selective_autonomy.schemas.process import (
    ActionSpec,
    ArgumentSpec,
    BusinessCluster,
    ProcessSchema,
    UIField,
    ValueType,
)

SCHEMA = ProcessSchema(
    process_id="billing",
    business_clusters=[BusinessCluster(id="retail"), BusinessCluster(id="vip")],
    fields=[
        UIField(name="email", pii=True),
        UIField(name="plan", type=ValueType.enum, enum=["basic", "pro"]),
        UIField(name="tickets", type=ValueType.integer),
        UIField(name="balance", type=ValueType.number),
        UIField(name="vip", type=ValueType.boolean),
        UIField(name="due", type=ValueType.datetime),
        UIField(name="customer_id", required=True),
    ],
    controls=[
        ActionSpec(name="lookup_order", tier=ActionTier.auto, arguments=[ArgumentSpec(name="order_id")]),
        ActionSpec(
            name="refund",
            tier=ActionTier.approval_required,
            arguments=[
                ArgumentSpec(name="amount", type=ValueType.number),
                ArgumentSpec(name="note", type=ValueType.text, required=False),
            ],
        ),
    ],
)
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class Schemas:
    """A :class:`SchemaSource` over fixed schemas."""

    def __init__(self, *schemas: ProcessSchema) -> None:
        self.by_id = {s.process_id: s for s in schemas}

    def schema(self, process_id: str) -> ProcessSchema | None:
        return self.by_id.get(process_id)

    def processes(self) -> list[str]:
        return sorted(self.by_id)


def body(**overrides: Any) -> dict[str, Any]:
    """A valid UIStateChanged body for SCHEMA, as a platform would send it."""
    document: dict[str, Any] = {
        "session_id": "s1",
        "process_id": "billing",
        "business_cluster": "retail",
        "state_version": 3,
        "timestamp": "2026-03-02T09:00:00Z",
        "actor": "operator",
        "ui_state": {
            "fields": {"email": "ada@example.org", "plan": "pro", "tickets": 2, "customer_id": "C-7"},
            "chat_tail": [{"speaker": "customer", "text": "where is my order?"}],
            "controls": ["lookup_order", "refund"],
            "recent_actions": [{"action_type": "lookup_order", "arguments": {"order_id": "A1"}}],
        },
        "last_action": {"action_type": "lookup_order", "arguments": {"order_id": "A1"}},
    }
    document.update(overrides)
    return document


def executed(
    action: Action | None = None,
    session: str = "s1",
    version: int = 3,
    executed_by: Executor = Executor.system,
) -> ActionExecuted:
    action = action or Action(action_type="lookup_order", arguments={"order_id": "A 1/2"})
    return ActionExecuted(
        action_id=action_id_for(session, version, action),
        event_id="e1",
        session_id=session,
        process_id="billing",
        business_cluster="retail",
        state_version=version,
        action=action,
        tier=ActionTier.auto,
        policy_probability=0.9,
        critic_score=0.95,
        threshold=0.8,
        policy_version="pol-1",
        executed_by=executed_by,
        operator_id="op7" if executed_by is Executor.operator else None,
        decided_at=T0,
    )


class ListPublisher:
    """A :class:`RecordPublisher` that keeps records in a list, or fails every one of them."""

    def __init__(self, fail: bool = False) -> None:
        self.records: list[Outgoing] = []
        self.fail = fail
        self.started = False
        self.closed = False

    async def publish(self, records: Sequence[Outgoing]) -> list[Delivered | NotDelivered]:
        await asyncio.sleep(0)
        if self.fail:
            return [NotDelivered("Local: Message timed out") for _ in records]
        out: list[Delivered | NotDelivered] = []
        for record in records:
            self.records.append(record)
            out.append(Delivered(record.topic, 0, len(self.records) - 1))
        return out

    def start(self) -> None:
        self.started = True

    def close(self) -> None:
        self.closed = True
