"""Builders of the contracts and process schemas the tests share: one place for every area.

Process schemas
    :func:`billing_schema` builds the ``billing`` process (clusters ``retail`` and ``vip``) the
    decide path, the edges and onboarding use, each with the fields and controls it needs:
    :data:`BILLING` (the agents' schema, a guardrailed ``vip``), :data:`BILLING_TYPED` (a field of
    every type, the ingest validation's), :data:`BILLING_MINIMAL` (onboarding's). :data:`HELPDESK` is
    the console's process (personal data on screen); :func:`refunds_schema` the schemas' own tests'
    one (every field type and argument kind).
Events and contracts
    :func:`event` (a ``ui.state`` event of :data:`BILLING`), :func:`body` (its JSON as a platform
    posts it to ingest), :func:`executed` and :func:`step` (``ActionExecuted``), :func:`deferral`
    (an ``OperatorDeferral`` with the customer's name and email in it), :func:`samples` (one of every
    Avro contract), :func:`operator_session` (the states of an operator's session),
    :func:`recorded` (a session as the store keeps it), :func:`cases` (trace cases).

Shared fakes and other support (publishers, sinks, fixed models, store builders, hypothesis
strategies) are in ``tests/support/``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from selective_autonomy.schemas.event_parts import (
    Action,
    ActionTier,
    Actor,
    ChatTurn,
    DeferralReason,
    Executor,
    Speaker,
    Stage,
    UIState,
    Verdict,
)
from selective_autonomy.schemas.events import (
    ActionExecuted,
    ActionFailed,
    ActionProposed,
    CopilotFeedback,
    DeadLetter,
    EventModel,
    OperatorDeferral,
    StageChanged,
    UIStateChanged,
    action_id_for,
)
from selective_autonomy.schemas.process import (
    ActionSpec,
    ArgumentSpec,
    BusinessCluster,
    Guardrails,
    ProcessSchema,
    UIField,
    ValueType,
)
from selective_autonomy.store.models import RecordedSession, RecordedState
from selective_autonomy.traces.format import Case, TraceStep

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
"""The start of the decide path's, the edges' and the controls' hand-made timelines."""


# --- process schemas ---------------------------------------------------------------------------

LOOKUP_ORDER = ActionSpec(name="lookup_order", tier=ActionTier.auto, arguments=[ArgumentSpec(name="order_id")])


def billing_schema(
    fields: list[UIField],
    controls: list[ActionSpec],
    vip: Guardrails | None = None,
) -> ProcessSchema:
    """The ``billing`` process with clusters ``retail`` and ``vip`` (``vip`` under ``vip`` guardrails, if given)."""
    return ProcessSchema(
        process_id="billing",
        business_clusters=[
            BusinessCluster(id="retail"),
            BusinessCluster(id="vip") if vip is None else BusinessCluster(id="vip", guardrails=vip),
        ],
        fields=fields,
        controls=controls,
    )


BILLING = billing_schema(
    fields=[UIField(name="email", pii=True), UIField(name="plan", type=ValueType.enum, enum=["basic", "pro"])],
    controls=[
        LOOKUP_ORDER,
        ActionSpec(name="send_invoice", tier=ActionTier.critical),
        ActionSpec(
            name="refund",
            tier=ActionTier.approval_required,
            arguments=[ArgumentSpec(name="amount", type=ValueType.number)],
        ),
    ],
    vip=Guardrails(blocked_actions=["close_chat"], max_autonomous_steps=2),
)
"""The decide path's process: a guardrailed ``vip`` cluster, one control of each tier."""

BILLING_TYPED = billing_schema(
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
        LOOKUP_ORDER,
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
"""The edges' process: a field of every type and a required one, for ingest's validation."""

BILLING_MINIMAL = billing_schema(
    fields=[UIField(name="plan", type=ValueType.enum, enum=["basic", "pro"])],
    controls=[ActionSpec(name="lookup_order", tier=ActionTier.auto), ActionSpec(name="send_invoice")],
)
"""Onboarding's process: one field, two controls; :func:`cases` are its traces."""

HELPDESK = ProcessSchema(
    process_id="helpdesk",
    business_clusters=[BusinessCluster(id="billing"), BusinessCluster(id="outage")],
    fields=[
        UIField(name="customer_name", pii=True),
        UIField(name="email", pii=True),
        UIField(name="plan", type=ValueType.enum, enum=["basic", "pro", "business"]),
        UIField(name="open_invoices", type=ValueType.integer),
    ],
    controls=[
        ActionSpec(name="lookup_invoice", tier=ActionTier.auto, arguments=[ArgumentSpec(name="invoice_id")]),
        ActionSpec(
            name="issue_refund",
            tier=ActionTier.approval_required,
            arguments=[
                ArgumentSpec(name="amount", type=ValueType.number),
                ArgumentSpec(name="reason", type=ValueType.enum, enum=["duplicate", "outage", "goodwill"]),
                ArgumentSpec(name="notify", type=ValueType.boolean, required=False),
            ],
        ),
        ActionSpec(
            name="set_priority",
            tier=ActionTier.critical,
            arguments=[ArgumentSpec(name="level", type=ValueType.integer)],
        ),
        ActionSpec(name="update_email", tier=ActionTier.critical, arguments=[ArgumentSpec(name="email", pii=True)]),
    ],
)
"""The console's process: a small helpdesk whose screens hold the customer's name and email."""


def refunds_schema() -> ProcessSchema:
    """A support process with a field of every type and arguments of every kind (the schemas' tests)."""
    return ProcessSchema(
        process_id="refunds",
        business_clusters=[BusinessCluster(id="retail"), BusinessCluster(id="vip")],
        fields=[
            UIField(name="customer_name", pii=True),
            UIField(name="email", pii=True),
            UIField(name="order_id"),
            UIField(name="status", type=ValueType.enum, enum=["open", "pending", "resolved"]),
            UIField(name="amount", type=ValueType.number),
            UIField(name="items", type=ValueType.integer),
            UIField(name="vip", type=ValueType.boolean),
            UIField(name="note", type=ValueType.text),
            UIField(name="due", type=ValueType.datetime),
        ],
        controls=[
            ActionSpec(name="lookup_order", arguments=[ArgumentSpec(name="order_id")]),
            ActionSpec(
                name="issue_refund",
                arguments=[
                    ArgumentSpec(name="amount", type=ValueType.number),
                    ArgumentSpec(name="reason", type=ValueType.enum, enum=["damaged", "late", "other"]),
                    ArgumentSpec(name="notify", type=ValueType.boolean, required=False),
                ],
            ),
            ActionSpec(name="set_items", arguments=[ArgumentSpec(name="count", type=ValueType.integer)]),
            ActionSpec(
                name="schedule_callback",
                arguments=[
                    ArgumentSpec(name="at", type=ValueType.datetime),
                    ArgumentSpec(name="phone", pii=True),
                ],
            ),
            ActionSpec(name="escalate"),
        ],
    )


FLIGHTS = ProcessSchema(
    process_id="flights",
    business_clusters=[BusinessCluster(id="default")],
    fields=[UIField(name="origin")],
    controls=[
        ActionSpec(
            name="book",
            arguments=[
                ArgumentSpec(name="city"),
                ArgumentSpec(name="seat", type=ValueType.enum, enum=["aisle", "window"]),
                ArgumentSpec(name="travelers", type=ValueType.integer),
            ],
        )
    ],
)
"""One action with a free-text, an enum and an integer argument (the view-budget benchmark's tests)."""


def write_schema(path: Path, schema: ProcessSchema = BILLING_MINIMAL) -> Path:
    schema.save(path)
    return path


# --- events of the billing process ---------------------------------------------------------------


def event(session: str = "s1", version: int = 1, cluster: str = "retail", process: str = "billing") -> UIStateChanged:
    """A ``ui.state`` event of :data:`BILLING`."""
    return UIStateChanged(
        session_id=session,
        process_id=process,
        business_cluster=cluster,
        state_version=version,
        timestamp=T0 + timedelta(seconds=version),
        ui_state=UIState(fields={"email": "ada@example.org", "plan": "pro"}),
    )


def body(**overrides: Any) -> dict[str, Any]:
    """A valid UIStateChanged body for :data:`BILLING_TYPED`, as a platform would send it."""
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
    """A ``billing`` step for the executor to carry out (by default an unattended lookup)."""
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


# --- operator sessions of the billing process ------------------------------------------------------
# An operator looks the order up, sends an invoice when the plan is ``pro``, and closes the chat: a
# flow a policy learns from a few dozen cases (the trace -> first policy tests, unit and integration).

ORDER_LOOKUP = Action(action_type="lookup_order", arguments={"order_id": "A1"})
INVOICE = Action(action_type="send_invoice")
CLOSE = Action(action_type="close_chat")


def flow(plan: str) -> list[Action]:
    return [ORDER_LOOKUP, INVOICE, CLOSE] if plan == "pro" else [ORDER_LOOKUP, CLOSE]


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


def recorded(states: list[UIStateChanged], *, closed: bool = True) -> RecordedSession:
    """The session of ``states`` as the store's trace table keeps it."""
    kept = [
        RecordedState(
            process_id=s.process_id,
            session_id=s.session_id,
            business_cluster=s.business_cluster,
            state_version=s.state_version,
            event_id=s.event_id,
            timestamp=s.timestamp,
            actor=s.actor,
            ui_state=s.ui_state,
            last_action=s.last_action,
            received_at=T0,
        )
        for s in states
    ]
    return RecordedSession(
        process_id=states[0].process_id,
        session_id=states[0].session_id,
        business_cluster=states[0].business_cluster,
        first_at=min(s.timestamp for s in states),
        last_at=max(s.timestamp for s in states),
        closed=closed,
        states=list(reversed(kept)),  # any order: pairs follow the versions
    )


# --- trace cases of the minimal billing process (onboarding) ----------------------------------------

CASES_T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
FLOW = [Action(action_type="lookup_order"), Action(action_type="send_invoice"), Action(action_type="close_chat")]


def cases(n: int = 12, flow: list[Action] | None = None) -> list[Case]:
    """``n`` cases of :data:`BILLING_MINIMAL`, an hour apart, each one operator's ``flow`` a minute a step."""
    steps = flow or FLOW
    return [
        Case(
            case_id=f"c{c}",
            process_id=BILLING_MINIMAL.process_id,
            business_cluster="retail",
            started_at=CASES_T0 + timedelta(hours=c),
            steps=[
                TraceStep(
                    state=UIState(fields={"plan": "pro"}, recent_actions=steps[:i]),
                    action=action,
                    operator_id="op1",
                    timestamp=CASES_T0 + timedelta(hours=c, minutes=i + 1),
                )
                for i, action in enumerate(steps)
            ],
        )
        for c in range(n)
    ]


# --- the helpdesk process (the console) ------------------------------------------------------------

NAME = "Ada Lovelace"
EMAIL = "ada.lovelace@example.org"
RECENT = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=3)
"""The console's timeline starts a few minutes ago (its pages show ages and the inbox filters by them)."""


def tier_of(action: Action | None) -> ActionTier | None:
    """The tier :data:`HELPDESK` gives ``action`` (None for none, or one it does not list)."""
    spec = HELPDESK.action(action.action_type) if action is not None else None
    return spec.tier if spec is not None else None


def deferral(
    session: str = "s1",
    version: int = 3,
    suggestion: Action | None = None,
    reason: DeferralReason = DeferralReason.below_threshold,
    process: str = "helpdesk",
    cluster: str = "billing",
    at: datetime | None = None,
    critic_score: float | None = 0.62,
) -> OperatorDeferral:
    """A deferral whose screen and chat hold the customer's name and email."""
    if suggestion is None and reason is not DeferralReason.model_unavailable:
        suggestion = Action(action_type="lookup_invoice", arguments={"invoice_id": "INV-204"})
    return OperatorDeferral(
        stage=Stage.selective,
        deferral_id=f"d-{session}-{version}",
        event_id=f"e-{session}-{version}",
        session_id=session,
        process_id=process,
        business_cluster=cluster,
        state_version=version,
        ui_state=UIState(
            fields={"customer_name": NAME, "email": EMAIL, "plan": "pro", "open_invoices": 2},
            chat_tail=[
                ChatTurn(speaker=Speaker.customer, text=f"Hi, this is {NAME}, I was charged twice."),
                ChatTurn(speaker=Speaker.operator, text="Sorry to hear that, let me check."),
            ],
            recent_actions=[Action(action_type="update_email", arguments={"email": EMAIL})],
            case_started_at=(at or RECENT) - timedelta(minutes=4),
        ),
        suggestion=suggestion,
        suggestion_action_id=action_id_for(session, version, suggestion) if suggestion else None,
        tier=tier_of(suggestion),
        policy_probability=0.71 if suggestion else None,
        critic_score=critic_score if suggestion else None,
        threshold=0.9 if suggestion else None,
        reason=reason,
        detail=f"critic score {critic_score} for {NAME} is below 0.9" if suggestion else "policy unavailable: timeout",
        policy_version="ngram-7" if suggestion else None,
        critic_version="critic-3" if suggestion else None,
        deferred_at=at or RECENT,
    )


INVOICE_LOOKUP = Action(action_type="lookup_invoice", arguments={"invoice_id": "INV-204"})


def step(
    session: str = "u1",
    version: int = 2,
    action: Action = INVOICE_LOOKUP,
    by: Executor = Executor.system,
    process: str = "helpdesk",
    cluster: str = "billing",
    at: datetime | None = None,
) -> ActionExecuted:
    """A helpdesk step the decide agent executed unattended (or, with ``by=operator``, an operator's)."""
    system = by is Executor.system
    return ActionExecuted(
        action_id=action_id_for(session, version, action),
        event_id=f"e-{session}-{version}",
        session_id=session,
        process_id=process,
        business_cluster=cluster,
        state_version=version,
        action=action,
        tier=tier_of(action) or ActionTier.auto,
        policy_probability=0.88 if system else None,
        critic_score=0.97 if system else None,
        threshold=0.93 if system else None,
        policy_version="ngram-7" if system else None,
        critic_version="critic-3" if system else None,
        executed_by=by,
        operator_id=None if system else "bob",
        decided_at=at or RECENT,
    )


# --- one of every Avro contract --------------------------------------------------------------------

NOW = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
ACTION = Action(
    action_type="refund", arguments={"amount": 12.5, "reason": "late", "count": 2, "urgent": True, "x": None}
)
UI = UIState(
    fields={"name": "Ada", "tickets": 3, "vip": False, "balance": 10.25, "note": None},
    chat_tail=[ChatTurn(speaker="customer", text="my order is late", at=NOW)],
    controls=["refund", "close_chat"],
    recent_actions=[Action(action_type="lookup", arguments={"order": "A1"})],
    case_started_at=NOW,
)


def samples() -> list[EventModel]:
    action_id = action_id_for("s1", 4, ACTION)
    return [
        UIStateChanged(
            session_id="s1",
            process_id="p",
            business_cluster="c",
            state_version=4,
            timestamp=NOW,
            actor="operator",
            ui_state=UI,
            last_action=ACTION,
            last_action_id=action_id,
        ),
        ActionProposed(
            action_id=action_id,
            event_id="e",
            session_id="s1",
            process_id="p",
            business_cluster="c",
            state_version=4,
            action=ACTION,
            tier=ActionTier.critical,
            policy_probability=0.9,
            critic_score=0.8,
            policy_version="pol-1",
            critic_version="crit-1",
            proposed_at=NOW,
        ),
        ActionExecuted(
            action_id=action_id,
            event_id="e",
            session_id="s1",
            process_id="p",
            business_cluster="c",
            state_version=4,
            action=ACTION,
            tier=ActionTier.auto,
            policy_probability=0.9,
            critic_score=0.97,
            threshold=0.95,
            policy_version="pol-1",
            critic_version="crit-1",
            decided_at=NOW,
        ),
        OperatorDeferral(
            stage=Stage.selective,
            event_id="e",
            session_id="s1",
            process_id="p",
            business_cluster="c",
            state_version=4,
            ui_state=UI,
            suggestion=ACTION,
            suggestion_action_id=action_id,
            tier="approval_required",
            policy_probability=0.5,
            critic_score=0.4,
            threshold=0.9,
            reason=DeferralReason.approval_required,
            detail="refunds need approval",
            deferred_at=NOW,
        ),
        OperatorDeferral(
            stage=Stage.selective,
            event_id="e",
            session_id="s1",
            process_id="p",
            business_cluster="c",
            state_version=4,
            ui_state=UIState(),
            reason=DeferralReason.model_unavailable,
            deferred_at=NOW,
        ),
        CopilotFeedback(
            deferral_id="d",
            session_id="s1",
            process_id="p",
            business_cluster="c",
            state_version=4,
            suggestion=ACTION,
            suggestion_action_id=action_id,
            verdict=Verdict.corrected,
            operator_action=Action(action_type="close_chat"),
            operator_id="op7",
            latency_ms=5300,
            given_at=NOW,
        ),
        CopilotFeedback(
            session_id="s1",
            process_id="p",
            business_cluster="c",
            state_version=4,
            suggestion=ACTION,
            verdict=Verdict.accepted,
            operator_id="op7",
            latency_ms=0,
            given_at=NOW,
        ),
        DeadLetter(
            original=b"\x00\xff",
            key=b"k",
            topic="ui.state",
            partition=3,
            offset=17,
            error="bad",
            error_type="DecodeError",
            failed_at=NOW,
        ),
        StageChanged(
            process_id="billing",
            business_cluster="retail",
            from_stage=Stage.copilot,
            to_stage=Stage.selective,
            reason="certified",
            certified_coverage=0.42,
            thresholds_version="t3",
            changed_at=NOW,
        ),
        ActionFailed(
            action_id=action_id,
            event_id="e9",
            session_id="s1",
            process_id="billing",
            business_cluster="retail",
            state_version=4,
            action=ACTION,
            status_code=422,
            response_excerpt='{"error": "no"}',
            error="refused",
            attempts=1,
            failed_at=NOW,
        ),
    ]
