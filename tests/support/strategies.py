"""Hypothesis strategies for the events of :func:`tests.factories.refunds_schema`, and a hand-written one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import strategies as st

from selective_autonomy.schemas.event_parts import Action, Actor, ChatTurn, Scalar, Speaker, UIState
from selective_autonomy.schemas.events import UIStateChanged
from selective_autonomy.schemas.identifiers import is_name
from tests.factories import refunds_schema

T0 = datetime(2024, 3, 4, 9, 30, tzinfo=UTC)


def names(max_size: int) -> st.SearchStrategy[str]:
    """Any text the contract accepts as a name (action type, field, argument, cluster)."""
    return st.text(min_size=1, max_size=max_size).filter(is_name)


SCHEMA = refunds_schema()

scalars: st.SearchStrategy[Scalar] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**53), max_value=2**53),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.text(max_size=30),
)

field_values: st.SearchStrategy[dict[str, Scalar]] = st.fixed_dictionaries(
    {},
    optional={
        "order_id": st.text(max_size=12),
        "status": st.sampled_from(["open", "pending", "resolved", "weird"]),
        "amount": st.one_of(st.floats(min_value=0, max_value=1e4), st.none()),
        "items": st.integers(min_value=0, max_value=20),
        "vip": st.booleans(),
        "note": st.text(max_size=400),
        "legacy_flag": scalars,
        "zz_extra": st.text(max_size=300),
    },
)

chat_turns = st.builds(
    ChatTurn,
    speaker=st.sampled_from(list(Speaker)),
    text=st.text(max_size=300),
    at=st.one_of(st.none(), st.integers(0, 3600).map(lambda s: T0 + timedelta(seconds=s))),
)

actions = st.builds(
    Action,
    action_type=st.sampled_from([*SCHEMA.action_names, "mystery"]),
    arguments=st.dictionaries(st.sampled_from(["order_id", "amount", "text", "phone", "x"]), scalars, max_size=3),
)


@st.composite
def ui_events(draw: st.DrawFn, fields: st.SearchStrategy[dict[str, Scalar]] = field_values) -> UIStateChanged:
    started = draw(st.one_of(st.none(), st.integers(0, 10**6).map(lambda s: T0 - timedelta(seconds=s))))
    return UIStateChanged(
        session_id="s1",
        process_id=SCHEMA.process_id,
        business_cluster=draw(st.sampled_from(["retail", "vip", "other"])),
        state_version=draw(st.integers(0, 500)),
        timestamp=T0 + timedelta(seconds=draw(st.integers(0, 10**6))),
        actor=draw(st.sampled_from(list(Actor))),
        ui_state=UIState(
            fields=draw(fields),
            chat_tail=draw(st.lists(chat_turns, max_size=10)),
            controls=draw(st.lists(st.sampled_from(SCHEMA.action_names[:5]), max_size=5, unique=True)),
            recent_actions=draw(st.lists(actions, max_size=14)),
            case_started_at=started,
        ),
    )


def make_event(
    fields: dict[str, Scalar] | None = None,
    chat: list[tuple[Speaker, str]] | None = None,
    recent: list[Action] | None = None,
    **overrides: object,
) -> UIStateChanged:
    """A hand-written event for example-based tests."""
    data: dict[str, object] = {
        "session_id": "s1",
        "process_id": SCHEMA.process_id,
        "business_cluster": "retail",
        "state_version": 3,
        "timestamp": T0,
        "ui_state": UIState(
            fields=fields or {},
            chat_tail=[ChatTurn(speaker=s, text=t) for s, t in chat or []],
            recent_actions=recent or [],
            controls=["lookup_order", "escalate"],
            case_started_at=T0 - timedelta(seconds=90),
        ),
    }
    data.update(overrides)
    return UIStateChanged.model_validate(data)
