"""Safety properties that hold whatever the models say, and console access control. No network.

1. A policy and a critic forced to be maximally confident (probability 1.0, score 1.0, or a critic
   that overshoots) on an action outside the process schema (unknown type, unknown, missing or
   ill-typed argument, over-long text) or of tier ``approval_required`` never produce an executed
   action: through :class:`DecisionEngine`, the gate and :meth:`Decision.output`, in every stage
   and every business cluster, with every threshold at 0.
2. The operator console refuses anonymous and wrong-credential requests on every API route and
   page, including the ones ``tests/unit/console`` does not list, and a refused request sends
   nothing.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from selective_autonomy.agents.decisions import Decision, DecisionEngine
from selective_autonomy.agents.gate import GateOutcome, SessionProgress
from selective_autonomy.config import ConsoleSettings, Settings
from selective_autonomy.console.app import create_app
from selective_autonomy.console.audits import AuditBook
from selective_autonomy.console.auth import SESSION_COOKIE, Authenticator
from selective_autonomy.console.inbox import Inbox
from selective_autonomy.inference.protocol import Candidate, CriticInput, Proposal
from selective_autonomy.inference.registry import ModelRegistry, ProcessModels, ServicePointer
from selective_autonomy.inference.thresholds import Thresholds
from selective_autonomy.schemas.event_parts import Action, ActionTier, DeferralReason, Scalar, Stage
from selective_autonomy.schemas.events import ActionExecuted, OperatorDeferral, UIStateChanged
from selective_autonomy.schemas.grammar import DEFAULT_MAX_TEXT_CHARS, validate_action
from tests.factories import BILLING as SCHEMA
from tests.factories import HELPDESK as CONSOLE_SCHEMA
from tests.factories import deferral, event, step
from tests.support.fakes import ListSink
from tests.support.strategies import names

CLUSTERS = ("retail", "vip", "not-in-the-schema")
EVERYTHING_PASSES = Thresholds(
    values={f"billing/{cluster}/{tier.value}": 0.0 for cluster in CLUSTERS for tier in ActionTier}
)

# -- maximally confident models -------------------------------------------------------------------


class ConfidentPolicy:
    """Proposes its actions with probability 1.0 (its top one first), for every session."""

    version = "confident-policy"

    def __init__(self, actions: Sequence[Action]) -> None:
        self.actions = list(actions)

    def propose(self, events: Sequence[UIStateChanged], top_k: int = 5) -> list[Proposal]:
        candidates = [Candidate(action=action, probability=1.0) for action in self.actions[:top_k]]
        return [Proposal(candidates=candidates, policy_version=self.version) for _ in events]


class ConfidentCritic:
    """Scores every action at ``score`` (1.0, or beyond: the engine clamps it)."""

    version = "confident-critic"

    def __init__(self, score: float = 1.0) -> None:
        self.value = score

    def score(self, items: Sequence[CriticInput]) -> list[float]:
        return [self.value for _ in items]


def engine(actions: Sequence[Action], stages: dict[str, Stage], critic_score: float = 1.0) -> DecisionEngine:
    pointer = ServicePointer(thresholds=EVERYTHING_PASSES, stages=stages, default_stage=Stage.selective)
    models = ProcessModels(
        schema=SCHEMA, policy=ConfidentPolicy(actions), critic=ConfidentCritic(critic_score), pointer=pointer
    )
    return DecisionEngine({"billing": models})


# -- actions outside the schema -------------------------------------------------------------------

scalars: st.SearchStrategy[Scalar] = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=20)
)
not_a_string = st.one_of(st.none(), st.booleans(), st.integers(), st.floats())
not_a_number = st.one_of(st.none(), st.booleans(), st.text(max_size=20))
unknown_type = st.builds(
    Action,
    action_type=names(30).filter(lambda name: SCHEMA.action(name) is None),
    arguments=st.dictionaries(names(10), scalars, max_size=3),
)
unknown_argument = st.builds(
    lambda base, name, value: Action(action_type=base.action_type, arguments={**base.arguments, name: value}),
    st.sampled_from(
        [
            Action(action_type="lookup_order", arguments={"order_id": "A1"}),
            Action(action_type="send_invoice"),
            Action(action_type="close_chat"),
        ]
    ),
    names(12).filter(lambda name: name not in ("order_id",)),
    scalars,
)
missing_argument = st.sampled_from(
    [
        Action(action_type="lookup_order"),
        Action(action_type="send_text"),
        Action(action_type="transfer_chat"),
        Action(action_type="refund"),
    ]
)
ill_typed = st.one_of(
    not_a_string.map(lambda v: Action(action_type="lookup_order", arguments={"order_id": v})),
    not_a_string.map(lambda v: Action(action_type="transfer_chat", arguments={"queue": v})),
    not_a_number.map(lambda v: Action(action_type="refund", arguments={"amount": v})),
    st.integers(DEFAULT_MAX_TEXT_CHARS + 1, DEFAULT_MAX_TEXT_CHARS + 50).map(
        lambda n: Action(action_type="send_text", arguments={"text": "x" * n})
    ),
)
outside_schema = st.one_of(unknown_type, unknown_argument, missing_argument, ill_typed)
approval_required = st.floats(allow_nan=False, allow_infinity=False).map(
    lambda amount: Action(action_type="refund", arguments={"amount": amount})
)
stages = st.fixed_dictionaries({cluster: st.sampled_from(list(Stage)) for cluster in CLUSTERS})


def assert_never_executed(decisions: list[Decision]) -> None:
    for decision in decisions:
        assert decision.outcome is not GateOutcome.execute, decision
        record = decision.output()
        assert not isinstance(record, ActionExecuted), record
        if decision.stage is Stage.selective:
            assert isinstance(record, OperatorDeferral)
            assert record.reason in (DeferralReason.schema_violation, DeferralReason.approval_required)


@given(
    top=st.one_of(outside_schema, approval_required),
    runner_up=st.one_of(st.none(), st.just(Action(action_type="lookup_order", arguments={"order_id": "A1"}))),
    stages=stages,
    critic_score=st.sampled_from([1.0, 1.5, 1e9, math.inf]),
    steps=st.integers(0, 3),
)
def test_confident_models_never_execute_an_unsafe_action(
    top: Action, runner_up: Action | None, stages: dict[str, Stage], critic_score: float, steps: int
) -> None:
    assert validate_action(SCHEMA, top) or SCHEMA.action(top.action_type).tier is ActionTier.approval_required  # type: ignore[union-attr]
    actions = [top] if runner_up is None else [top, runner_up]
    decide = engine(actions, stages, critic_score)
    events = [event(f"s-{cluster}", version=1, cluster=cluster) for cluster in CLUSTERS]
    progress = {e.session_id: SessionProgress(autonomous_steps=steps) for e in events}
    assert_never_executed(decide.decide(events, progress))


@given(actions=st.lists(st.one_of(outside_schema, approval_required), min_size=1, max_size=5))
def test_a_batch_of_unsafe_proposals_executes_nothing_in_any_stage(actions: list[Action]) -> None:
    for stage in Stage:
        decide = engine(actions, dict.fromkeys(CLUSTERS, stage))
        events = [event(f"s{i}-{c}", version=i, cluster=c) for i in range(len(actions)) for c in CLUSTERS]
        assert_never_executed(decide.decide(events, {}))


def test_the_same_harness_executes_a_valid_auto_action() -> None:
    """The control: the confident models do get valid, non-approval actions executed, so the
    refusals above come from the schema and the tier, not from the harness."""
    valid = Action(action_type="lookup_order", arguments={"order_id": "A1"})
    decide = engine([valid], {"retail": Stage.selective})
    [decision] = decide.decide([event("s1", cluster="retail")], {})
    assert decision.outcome is GateOutcome.execute
    assert isinstance(decision.output(), ActionExecuted)


# -- console access -------------------------------------------------------------------------------

ALICE = {"Authorization": "Bearer alice-token-1"}


@pytest.fixture
def console(tmp_path: Path) -> Iterator[tuple[TestClient, ListSink]]:
    registry = ModelRegistry(tmp_path / "models")
    registry.save_schema(CONSOLE_SCHEMA)
    registry.publish("helpdesk", ServicePointer(default_stage=Stage.copilot))
    inbox = Inbox()
    inbox.on_deferral(deferral("s1", 3))
    audits = AuditBook(rate=1.0)
    audits.on_executed(AUDITED)
    sink = ListSink()
    settings = ConsoleSettings(operators={"alice": SecretStr("alice-token-1")}, secret_key=SecretStr("k" * 32))
    app = create_app(
        Settings(models_dir=tmp_path / "models"),
        console=settings,
        sink=sink,
        inbox=inbox,
        audits=audits,
        start_feed=False,
    )
    with TestClient(app) as client:
        yield client, sink


def forged_cookies() -> list[str]:
    """Session cookies that must not sign anyone in."""
    other = Authenticator({"alice": SecretStr("alice-token-1")}, secret=b"another console's key")
    expired = Authenticator({"alice": SecretStr("alice-token-1")}, secret=b"k" * 32, ttl_s=-10)
    valid_shape = other.issue_session("alice")
    body, _, signature = valid_shape.partition(".")
    return [
        valid_shape,  # signed with another key
        expired.issue_session("alice"),  # signed with the right key, expired
        f"{body}.{signature[::-1]}",  # tampered signature
        body,  # no signature
        "garbage",
        "",
    ]


AUDITED = step("s2", 4)

ROUTES = [
    ("GET", "/api/inbox"),
    ("GET", "/api/counters"),
    ("GET", "/api/deferrals/d-s1-3"),
    ("POST", "/api/deferrals/d-s1-3/accept"),
    ("POST", "/api/deferrals/d-s1-3/correct"),
    ("POST", "/api/deferrals/d-s1-3/alternative"),
    ("GET", "/api/processes/helpdesk/action-schema"),
    ("GET", "/events"),
    ("GET", "/static/console.js"),
    ("GET", "/"),
    ("GET", "/ui/deferrals/d-s1-3/form?mode=correct"),
    ("GET", "/ui/deferrals/d-s1-3/arguments?action_type=lookup_invoice"),
    ("POST", "/ui/deferrals/d-s1-3/accept"),
    ("POST", "/ui/deferrals/d-s1-3/correct"),
    ("POST", "/ui/deferrals/d-s1-3/alternative"),
    ("GET", "/api/audits"),
    ("GET", f"/api/audits/{AUDITED.action_id}"),
    ("POST", f"/api/audits/{AUDITED.action_id}/right"),
    ("POST", f"/api/audits/{AUDITED.action_id}/wrong"),
    ("GET", f"/ui/audits/{AUDITED.action_id}/form"),
    ("GET", f"/ui/audits/{AUDITED.action_id}/arguments?action_type=lookup_invoice"),
    ("POST", f"/ui/audits/{AUDITED.action_id}/right"),
    ("POST", f"/ui/audits/{AUDITED.action_id}/wrong"),
    ("POST", "/logout"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_every_route_refuses_anonymous_wrong_token_and_forged_cookie_callers(
    console: tuple[TestClient, ListSink], method: str, path: str
) -> None:
    client, sink = console
    attempts: list[tuple[dict[str, str], str | None]] = [
        ({}, None),
        ({"Authorization": "Bearer not-a-token"}, None),
        ({"Authorization": "Bearer "}, None),
        ({"Authorization": "Basic YWxpY2U6YWxpY2UtdG9rZW4tMQ=="}, None),  # the right token, wrong scheme
        ({"Authorization": "bearer alice-token-1x"}, None),
        ({"Authorization": "Bearer alice-token-"}, None),
        *(({}, cookie) for cookie in forged_cookies()),
    ]
    for headers, cookie in attempts:
        client.cookies.clear()
        if cookie is not None:
            client.cookies.set(SESSION_COOKIE, cookie)
        response = client.request(method, path, headers=headers, follow_redirects=False)
        # APIs answer 401; pages send people to the login form; nothing else gets through.
        assert response.status_code in (401, 303), (method, path, headers, cookie, response.status_code)
        if response.status_code == 303:
            assert response.headers["location"].startswith("/login")
    assert sink.sent == []
    # The control: the right token gets through where a read is safe.
    if method == "GET" and path.startswith("/api"):
        client.cookies.clear()
        assert client.request(method, path, headers=ALICE).status_code == 200
