"""A small helpdesk process, deferrals with personal data in them, and a sink that keeps records."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from selective_autonomy.schemas.event_parts import (
    Action,
    ActionTier,
    ChatTurn,
    DeferralReason,
    Executor,
    Speaker,
    Stage,
    UIState,
)
from selective_autonomy.schemas.events import ActionExecuted, EventModel, OperatorDeferral, action_id_for
from selective_autonomy.schemas.process import (
    ActionSpec,
    ArgumentSpec,
    BusinessCluster,
    ProcessSchema,
    UIField,
    ValueType,
)

SCHEMA = ProcessSchema(
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

NAME = "Ada Lovelace"
EMAIL = "ada.lovelace@example.org"
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=3)


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
            case_started_at=(at or T0) - timedelta(minutes=4),
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
        deferred_at=at or T0,
    )


LOOKUP = Action(action_type="lookup_invoice", arguments={"invoice_id": "INV-204"})


def step(
    session: str = "u1",
    version: int = 2,
    action: Action = LOOKUP,
    by: Executor = Executor.system,
    process: str = "helpdesk",
    cluster: str = "billing",
    at: datetime | None = None,
) -> ActionExecuted:
    """A step the decide agent executed unattended (or, with ``by=operator``, an operator's)."""
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
        decided_at=at or T0,
    )


def tier_of(action: Action | None) -> ActionTier | None:
    spec = SCHEMA.action(action.action_type) if action is not None else None
    return spec.tier if spec is not None else None


class ListSink:
    """An EventSink that keeps what it is given; ``fail`` makes flush raise like a broker timeout."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, EventModel, str | None, list[tuple[str, bytes]]]] = []
        self.flushes = 0
        self.fail = False

    def send(
        self, topic: str, event: EventModel, key: str | None = None, headers: list[tuple[str, bytes]] | None = None
    ) -> None:
        self.sent.append((topic, event, key, list(headers or [])))

    def flush(self, timeout_s: float = 30.0) -> None:
        self.flushes += 1
        if self.fail:
            self.sent.clear()
            raise TimeoutError("1 records were not delivered")

    def of(self, model: type[EventModel]) -> list[EventModel]:
        return [event for _, event, _, _ in self.sent if isinstance(event, model)]
