"""The cases of the store's trace table: idempotent appends, session summaries, complete cases in a
bounded window.

``tests/unit/store/test_traces.py`` runs them on SQLite, ``tests/integration/test_store_postgres.py``
on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from selective_autonomy.schemas.event_parts import Action, Actor, UIState
from selective_autonomy.schemas.events import UIStateChanged
from selective_autonomy.store import FeedbackStore
from selective_autonomy.store.models import CaseCompletion
from tests.support.store import T0

CLOSE = Action(action_type="close_chat")
LOOKUP = Action(action_type="lookup_order", arguments={"order_id": "A-17"})
COMPLETION = CaseCompletion(ending_actions=frozenset({"close_chat"}), idle_s=3600)


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    """Which database the cases run on; the PostgreSQL module overrides it with ``postgresql``."""
    return str(request.param)


@pytest.fixture
def trace_store_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'traces.db'}"
    return str(request.getfixturevalue(f"{backend}_database_url"))


@pytest.fixture
def trace_store(trace_store_url: str) -> Iterator[FeedbackStore]:
    with FeedbackStore.open(trace_store_url) as opened:
        yield opened


def session(
    name: str,
    actions: list[Action],
    *,
    start_min: float = 0,
    process: str = "returns",
    cluster: str = "eu",
) -> list[UIStateChanged]:
    """A system-opened session followed by one operator state per action, a minute apart."""
    states = []
    for version in range(len(actions) + 1):
        states.append(
            UIStateChanged(
                event_id=f"{name}-{version}",
                session_id=name,
                process_id=process,
                business_cluster=cluster,
                state_version=version,
                timestamp=T0 + timedelta(minutes=start_min + version),
                actor=Actor.operator if version else Actor.system,
                ui_state=UIState(fields={"step": version}, recent_actions=actions[:version]),
                last_action=actions[version - 1] if version else None,
            )
        )
    return states


def test_append_is_idempotent_by_process_session_and_version(trace_store: FeedbackStore) -> None:
    states = session("s1", [LOOKUP, CLOSE])
    assert trace_store.append_traces(states) == 3
    assert trace_store.append_traces(states) == 0  # redelivered: nothing stored twice
    changed = states[1].model_copy(update={"event_id": "other", "ui_state": UIState(fields={"step": 99})})
    assert trace_store.append_traces([changed, changed]) == 0  # the first write of a key stays
    assert trace_store.append_traces([]) == 0
    [case] = trace_store.recorded_cases("returns", COMPLETION, newest=10)
    assert [s.state_version for s in case.states] == [0, 1, 2]
    assert case.states[1].ui_state == states[1].ui_state and case.states[1].event_id == "s1-1"
    assert case.states[2].last_action == CLOSE and case.states[2].actor is Actor.operator
    assert case.states[0].timestamp == T0 and case.states[0].timestamp.utcoffset() == timedelta(0)
    assert case.closed and (case.first_at, case.last_at) == (T0, T0 + timedelta(minutes=2))
    assert trace_store.count_complete_cases("returns", COMPLETION) == 1


def test_states_out_of_order_and_in_pieces_build_the_same_session(trace_store: FeedbackStore) -> None:
    states = session("s1", [LOOKUP, LOOKUP, CLOSE])
    trace_store.append_traces([states[3], states[1]])
    assert trace_store.count_complete_cases("returns", COMPLETION) == 1  # closed as far as it is known
    trace_store.append_traces([states[0], states[2], states[3]])  # the close redelivered with the rest
    [case] = trace_store.recorded_cases("returns", COMPLETION, newest=10)
    assert [s.state_version for s in case.states] == [0, 1, 2, 3]
    assert (case.first_at, case.last_at) == (T0, T0 + timedelta(minutes=3))
    # A later operator step after the close reopens the session: not complete until it idles.
    reopened = session("s1", [LOOKUP, LOOKUP, CLOSE, LOOKUP])[4]
    trace_store.append_traces([reopened])
    assert trace_store.count_complete_cases("returns", COMPLETION) == 0


def test_complete_cases_are_closed_or_idle_on_the_process_clock(trace_store: FeedbackStore) -> None:
    trace_store.append_traces(session("closed", [LOOKUP, CLOSE]))
    trace_store.append_traces(session("open", [LOOKUP], start_min=10))
    trace_store.append_traces(session("nobody-acted", [], start_min=0))  # a system state only
    trace_store.append_traces(session("other-process", [LOOKUP, CLOSE], process="billing"))
    assert trace_store.count_complete_cases("returns", COMPLETION) == 1
    # 'open' idles once the process's newest state is an hour past its last one.
    trace_store.append_traces(session("later", [LOOKUP], start_min=71))
    assert trace_store.count_complete_cases("returns", COMPLETION) == 2
    cases = trace_store.recorded_cases("returns", COMPLETION, newest=10)
    assert [(c.session_id, c.closed) for c in cases] == [("closed", True), ("open", False)]
    assert trace_store.count_complete_cases("returns", COMPLETION, at_most=1) == 1
    assert trace_store.count_complete_cases("nowhere", COMPLETION) == 0
    assert trace_store.recorded_cases("nowhere", COMPLETION, newest=10) == []
    no_endings = CaseCompletion(ending_actions=frozenset(), idle_s=3600)
    # Without ending actions both are complete only because they idled: neither counts as closed.
    idle = trace_store.recorded_cases("returns", no_endings, newest=10)
    assert [(c.session_id, c.closed) for c in idle] == [("closed", False), ("open", False)]


def test_the_window_is_the_newest_cases_oldest_first(trace_store: FeedbackStore) -> None:
    for i in range(6):
        trace_store.append_traces(session(f"s{i}", [LOOKUP, CLOSE], start_min=10 * i))
    window = trace_store.recorded_cases("returns", COMPLETION, newest=3)
    assert [c.session_id for c in window] == ["s3", "s4", "s5"]
    assert all(len(c.states) == 3 for c in window)
    since = trace_store.recorded_cases("returns", COMPLETION, newest=10, since=T0 + timedelta(minutes=40))
    assert [c.session_id for c in since] == ["s4", "s5"]


def test_a_large_batch_is_written_in_chunks(trace_store: FeedbackStore) -> None:
    states = [s for i in range(300) for s in session(f"s{i:03d}", [LOOKUP, CLOSE], start_min=i)]
    assert trace_store.append_traces(states) == 900
    assert trace_store.count_complete_cases("returns", COMPLETION) == 300
    assert len(trace_store.recorded_cases("returns", COMPLETION, newest=1000)) == 300
