"""Request and response bodies of the console's JSON API. Pydantic only: no FastAPI, no Kafka."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from selective_autonomy.schemas.event_parts import (
    NAMED_VALUES,
    Action,
    ActionTier,
    DeferralReason,
    Scalar,
    Stage,
    Verdict,
)
from selective_autonomy.schemas.identifiers import Name


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ActionInput(_Body):
    """An operator's action, checked against the process's action grammar on the server."""

    action_type: Name
    arguments: dict[Name, Scalar] = Field(default_factory=dict, json_schema_extra=NAMED_VALUES)

    def to_action(self) -> Action:
        return Action(action_type=self.action_type, arguments=self.arguments)


class AcceptRequest(_Body):
    """Accept the suggestion: it executes as the operator's action."""

    state_version: int | None = Field(
        default=None, ge=0, description="When given, the state version the operator saw; another one answers 409."
    )


class CorrectRequest(_Body):
    """The suggestion was wrong (or there was none): execute the operator's action instead."""

    action: ActionInput
    state_version: int | None = Field(default=None, ge=0)


class AlternativeRequest(_Body):
    """The suggestion was fine too, but the operator's own action is the one executed."""

    action: ActionInput
    state_version: int | None = Field(default=None, ge=0)


class AuditRightRequest(_Body):
    """The unattended step was right. Nothing to send."""


class AuditWrongRequest(_Body):
    """The unattended step was wrong: ``action`` is what should have run instead (nothing is executed)."""

    action: ActionInput


class AnswerResponse(_Body):
    deferral_id: str
    session_id: str
    verdict: Verdict
    feedback_id: str
    action_id: str = Field(description="Deterministic id of the executed action (ActionExecuted.action_id).")
    executed_action: Action
    operator_id: str
    latency_ms: int


class AuditAnswerResponse(_Body):
    """The audit feedback that was published; no action runs (the step already did)."""

    action_id: str = Field(description="The audited step (ActionExecuted.action_id).")
    session_id: str
    verdict: Verdict = Field(description="accepted (right) or corrected (wrong).")
    feedback_id: str
    audited_action: Action
    operator_action: Action | None = Field(description="What should have run instead; null when right.")
    operator_id: str
    latency_ms: int


class ChatLine(_Body):
    speaker: str
    text: str


class ActionLine(_Body):
    action_type: str
    arguments: dict[str, Scalar] = Field(default_factory=dict)


class SuggestionView(_Body):
    action_type: str
    arguments: dict[str, Scalar]
    action_id: str | None = None
    tier: ActionTier | None = None


class CardView(_Body):
    """One pending deferral as an operator sees it: personal data masked everywhere."""

    deferral_id: str
    session_id: str
    process_id: str
    business_cluster: str
    state_version: int
    reason: DeferralReason
    detail: str
    deferred_at: datetime
    waiting_since: datetime
    shown_at: datetime = Field(description="When this version entered the inbox; latency is measured from here.")
    elapsed_s: int | None = Field(default=None, description="Age of the case at the deferred state.")
    fields: dict[str, Scalar]
    chat: list[ChatLine]
    recent_actions: list[ActionLine]
    suggestion: SuggestionView | None
    critic_score: float | None
    policy_probability: float | None
    threshold: float | None
    policy_version: str | None
    critic_version: str | None
    answers: list[Verdict] = Field(description="The answers this card allows.")
    schema_known: bool = Field(description="False: the process schema is missing, so the view shows no values.")


class AuditView(_Body):
    """An unattended step waiting for an audit, personal data masked."""

    action_id: str
    session_id: str
    process_id: str
    business_cluster: str
    state_version: int
    action: SuggestionView = Field(description="The step that ran, masked like a suggestion.")
    critic_score: float | None
    threshold: float | None
    policy_probability: float | None
    policy_version: str | None
    critic_version: str | None
    executed_at: datetime = Field(description="When the step ran (ActionExecuted.decided_at).")
    shown_at: datetime = Field(description="When it was offered for audit; latency is measured from here.")
    schema_known: bool = Field(description="False: the process schema is missing: no values shown, no 'wrong'.")


class AuditsView(_Body):
    operator_id: str
    audits: list[AuditView] = Field(description="Pending audits of the operator's processes, oldest first.")


class StageRow(_Body):
    process_id: str
    business_cluster: str
    stage: Stage
    paused: bool = Field(default=False, description="Autonomy paused by hand here (the cluster or its process).")


class CountersView(_Body):
    unattended_sessions: int = Field(description="Sessions whose last step ran unattended within the window.")
    waiting: int = Field(description="Pending deferrals (one per session).")
    automated_today: int
    operator_today: int
    deferred_today: int
    automation_rate: float | None = Field(description="automated / (automated + operator) executed steps today.")
    stages: list[StageRow]
    feed: str = Field(description="State of the topic reader: starting, catching_up, live or error.")
    revision: int = Field(default=0, description="Inbox revision these counters were computed at.")
    audits_pending: int = Field(default=0, description="Unattended steps waiting for an audit.")


class InboxView(_Body):
    operator_id: str
    cards: list[CardView]
    counters: CountersView


# -- hand controls (supervisors) ---------------------------------------------------------------------

REASON = Field(min_length=1, max_length=1000, description="Why: kept in the history with who and when.")


class StageRequest(_Body):
    """Set a cluster's stage by hand; the learning loop then holds it there until it is set again or released."""

    business_cluster: Name
    stage: Stage
    reason: str = REASON


class ReleaseRequest(_Body):
    """Give a cluster's stage back to the learning loop."""

    business_cluster: Name
    reason: str = REASON


class ConfirmRequest(_Body):
    """Confirm the promotion to selective the learning loop proposed for a cluster (``learning.promotion =
    confirmed``); the stage stays the learning loop's, which may still demote it."""

    business_cluster: Name
    reason: str = Field(
        default="promotion confirmed", min_length=1, max_length=1000, description="Why: kept in the history."
    )


class PauseRequest(_Body):
    """Pause a cluster, or the whole process (no cluster): nothing of it runs unattended until resumed."""

    business_cluster: Name | None = Field(default=None, description="None: the whole process.")
    reason: str = REASON


class ResumeRequest(_Body):
    """Lift the pause of a cluster, or of the whole process (no cluster); the other pauses stay."""

    business_cluster: Name | None = Field(default=None, description="None: the whole process.")
    reason: str = REASON


Control = Literal["stage", "release", "pause", "resume", "confirm"]


class PauseView(_Body):
    scope: str = Field(description="The business cluster, or '*' for the whole process.")
    reason: str
    by: str
    at: datetime


class HandStageView(_Body):
    stage: Stage
    reason: str
    by: str
    at: datetime


class PendingPromotionView(_Body):
    """A promotion to selective the learning loop proposed; a supervisor confirms it."""

    reason: str = Field(description="The learning loop's reason.")
    certified_coverage: float = Field(description="Share of calibration steps the certified thresholds run.")
    proposed_at: datetime
    certificate_issued_at: datetime = Field(description="Time of the newest evidence the certificate used.")
    policy_version: str
    critic_version: str
    target_precision: float


class ClusterControlsView(_Body):
    business_cluster: str
    stage: Stage
    held_by_hand: HandStageView | None = Field(description="The stage a person set; the learning loop holds it.")
    paused: PauseView | None = Field(description="The pause that covers the cluster (its own or the process's).")
    certified: bool = Field(description="A certificate (and so thresholds) is in force.")
    pending_promotion: PendingPromotionView | None = Field(
        default=None, description="A promotion to selective waiting for a supervisor (learning.promotion = confirmed)."
    )


class HandControlView(_Body):
    control: Control
    scope: str
    stage: Stage | None
    reason: str
    changed_by: str
    at: datetime


class StageMoveView(_Body):
    business_cluster: str
    from_stage: Stage | None
    to_stage: Stage
    reason: str
    changed_by: str | None = Field(description="Who set it by hand; null: the learning loop.")
    at: datetime


class ControlsView(_Body):
    """A process's stages, holds and pauses in force, and the newest hand controls and stage moves."""

    process_id: str
    pointer_revision: int
    clusters: list[ClusterControlsView]
    pauses: list[PauseView]
    history: list[HandControlView] = Field(description="Hand controls, oldest first.")
    stage_history: list[StageMoveView] = Field(description="Stage moves by hand or by the learning loop, oldest first.")


class ControlResponse(_Body):
    """What a hand control did: in force in the service pointer (workers follow it within a reload)."""

    process_id: str
    scope: str = Field(description="The business cluster, or '*' for the whole process.")
    control: Control
    changed: bool = Field(description="False: it was already so (a scope already paused keeps its first pause).")
    stage: Stage | None = Field(description="The cluster's stage now; null for the whole process.")
    stage_moved: bool
    published: bool | None = Field(
        description="Whether stage.changes acknowledged the move; null: nothing to publish. The move is in force "
        "either way."
    )
    publish_error: str | None
    pointer_revision: int
    pauses: list[PauseView] = Field(description="The pauses in force now.")
    operator_id: str
    message: str
