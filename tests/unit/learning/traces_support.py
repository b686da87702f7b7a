"""Synthetic operator sessions on ``ui.state``, for the trace -> first policy tests (unit and integration).

The process is the agents' small ``billing`` schema. An operator looks the order up, sends an
invoice when the plan is ``pro``, and closes the chat: a flow a policy learns from a few dozen cases.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from selective_autonomy.schemas.event_parts import Action, Actor, UIState
from selective_autonomy.schemas.events import UIStateChanged

LOOKUP = Action(action_type="lookup_order", arguments={"order_id": "A1"})
INVOICE = Action(action_type="send_invoice")
CLOSE = Action(action_type="close_chat")


def flow(plan: str) -> list[Action]:
    return [LOOKUP, INVOICE, CLOSE] if plan == "pro" else [LOOKUP, CLOSE]


def operator_session(
    session_id: str, started_at: datetime, *, plan: str = "pro", cluster: str = "retail", closed: bool = True
) -> list[UIStateChanged]:
    """The states of one session: opened by the system, then one state per operator action, 30 s apart.

    :param closed: end with the operator's close_chat (default True); False stops before it.
    """
    actions = flow(plan) if closed else flow(plan)[:-1]
    fields = {"email": f"{session_id}@example.org", "plan": plan}
    return [
        UIStateChanged(
            event_id=f"{session_id}-{version}",
            session_id=session_id,
            process_id="billing",
            business_cluster=cluster,
            state_version=version,
            timestamp=started_at + timedelta(seconds=30 * version),
            actor=Actor.operator if version else Actor.system,
            ui_state=UIState(
                fields=fields, controls=["lookup_order", "send_invoice"], recent_actions=actions[:version]
            ),
            last_action=actions[version - 1] if version else None,
        )
        for version in range(len(actions) + 1)
    ]


def operator_sessions(count: int, started_at: datetime, prefix: str = "s") -> list[list[UIStateChanged]]:
    """``count`` closed sessions two minutes apart, alternating pro and basic plans."""
    return [
        operator_session(f"{prefix}{i:03d}", started_at + timedelta(minutes=2 * i), plan="pro" if i % 2 else "basic")
        for i in range(count)
    ]
