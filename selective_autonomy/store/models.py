"""What the store returns: pydantic models, never database rows."""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, JsonValue

from selective_autonomy.schemas.event_parts import (
    Action,
    ActionTier,
    Actor,
    DeferralReason,
    RankedAction,
    Stage,
    UIState,
    Verdict,
)
from selective_autonomy.schemas.events import CopilotFeedback, OperatorDeferral, UIStateChanged


class ProposalOutcome(StrEnum):
    deferred = "deferred"
    executed = "executed"


class ActionStatus(StrEnum):
    claimed = "claimed"  # an executor holds it; neither applied nor failed yet
    applied = "applied"
    failed = "failed"


class ModelKind(StrEnum):
    policy = "policy"
    critic = "critic"
    thresholds = "thresholds"


class HandControl(StrEnum):
    """What a person did by hand (``selauto stage|pause|resume``, or the console)."""

    stage = "stage"  # set a cluster's stage; the learning loop holds it there
    release = "release"  # gave the cluster's stage back to the learning loop
    pause = "pause"  # nothing of the scope runs unattended
    resume = "resume"  # lifted a pause
    confirm = "confirm"  # confirmed a promotion to selective the learning loop proposed


class ServiceChangeKind(StrEnum):
    process_added = "process_added"
    schema_replaced = "schema_replaced"
    deployed = "deployed"
    rolled_back = "rolled_back"


class _StoreModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProposalRecord(_StoreModel):
    """The context of one suggestion: the state it was made in and the model signals behind it.

    ``proposal_id`` is the deferral id for a deferral and the action id for an executed action, so
    feedback joins its proposal on ``deferral_id``.
    """

    proposal_id: str = Field(min_length=1)
    session_id: str
    process_id: str
    business_cluster: str
    state_version: int = Field(ge=0)
    event: UIStateChanged
    suggestion: Action | None = None
    suggestion_action_id: str | None = None
    tier: ActionTier | None = None
    candidates: list[RankedAction] = Field(default_factory=list, description="Ranked policy candidates, best first.")
    policy_probability: float | None = None
    critic_score: float | None = None
    threshold: float | None = None
    policy_version: str | None = None
    critic_version: str | None = None
    stage: Stage
    outcome: ProposalOutcome
    reason: DeferralReason | None = Field(default=None, description="Why it was deferred; None when executed.")
    created_at: AwareDatetime
    inclusion_probability: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="P(this step is labelled whatever its score): 1 in copilot, the holdout share in an "
        "exploration session; None where labelling depended on the score (a selective-stage deferral).",
    )

    @classmethod
    def for_deferral(cls, deferral: OperatorDeferral, *, candidates: Sequence[RankedAction] = ()) -> ProposalRecord:
        """The record of a suggestion shown to an operator, in the state and stage the deferral carries."""
        return cls(
            proposal_id=deferral.deferral_id,
            session_id=deferral.session_id,
            process_id=deferral.process_id,
            business_cluster=deferral.business_cluster,
            state_version=deferral.state_version,
            event=deferral.state_event(),
            suggestion=deferral.suggestion,
            suggestion_action_id=deferral.suggestion_action_id,
            tier=deferral.tier,
            candidates=list(candidates),
            policy_probability=deferral.policy_probability,
            critic_score=deferral.critic_score,
            threshold=deferral.threshold,
            policy_version=deferral.policy_version,
            critic_version=deferral.critic_version,
            stage=deferral.stage,
            outcome=ProposalOutcome.deferred,
            reason=deferral.reason,
            created_at=deferral.deferred_at,
            inclusion_probability=deferral.inclusion_probability,
        )


class FeedbackWithContext(_StoreModel):
    """One operator answer, with the proposal it answers when that was recorded (else None)."""

    feedback: CopilotFeedback
    received_at: AwareDatetime
    context: ProposalRecord | None = None


class JudgedStep(_StoreModel):
    """An operator's verdict on a step that ran (an audit) or would have run (an exploration step),
    without the state: what the precision monitor reads."""

    feedback_id: str
    process_id: str
    business_cluster: str
    verdict: Verdict
    audit: bool
    inclusion_probability: float | None = Field(description="The audit's, or the exploration session's.")
    critic_version: str | None = None
    given_at: AwareDatetime
    received_at: AwareDatetime = Field(description="When the store received it: the monitor's clock.")


class AppliedAction(_StoreModel):
    action_id: str
    session_id: str
    action_type: str
    status: ActionStatus
    detail: str = ""
    claimed_at: AwareDatetime
    applied_at: AwareDatetime | None = Field(default=None, description="When it was marked applied or failed.")


class StageTransition(_StoreModel):
    id: int
    process_id: str
    business_cluster: str
    from_stage: Stage | None = Field(description="None for the first recorded stage.")
    to_stage: Stage
    reason: str = ""
    at: AwareDatetime
    changed_by: str | None = Field(default=None, description="Who set it by hand; None: the learning loop.")


class HandControlRecord(_StoreModel):
    """One hand control, as recorded."""

    id: int
    process_id: str
    scope: str = Field(description="A business cluster, or '*' for the whole process.")
    control: HandControl
    stage: Stage | None = Field(
        default=None, description="The stage set (control 'stage'), selective for 'confirm', else None."
    )
    reason: str
    changed_by: str
    at: AwareDatetime


class ModelVersion(_StoreModel):
    kind: ModelKind
    process_id: str
    version: str
    path: str
    metrics: dict[str, JsonValue] = Field(default_factory=dict)
    promoted: bool = False
    promoted_at: AwareDatetime | None = None
    created_at: AwareDatetime


class ServiceChange(_StoreModel):
    """A change made by hand to what is in service, and the service pointer revision it published."""

    id: int
    process_id: str
    revision: int = Field(ge=0)
    kind: ServiceChangeKind
    policy: str | None = Field(default=None, description="Policy version in service after the change.")
    critic: str | None = Field(default=None, description="Critic version after it; None: policy confidence.")
    changed_by: str
    reason: str = ""
    detail: str = Field(default="", description="What the change voided (certificates, stages, models).")
    at: AwareDatetime


class StoreCounts(_StoreModel):
    """Totals for reports; every verdict and outcome is present, zero when none."""

    feedback_by_verdict: dict[Verdict, int]
    proposals_by_outcome: dict[ProposalOutcome, int]
    feedback_without_proposal: int = Field(description="Feedback whose deferral_id matches no recorded proposal.")


class CaseCompletion(_StoreModel):
    """When a recorded session counts as a *complete case*: one a policy may learn from as a whole.

    A session is complete when at least one of its states was produced by an operator's action
    (``actor`` operator with ``last_action`` set) and either

    - **closed**: its newest operator action (by state version) is one of ``ending_actions``: the
      operator ended it, and the case ends with that step; or
    - **idle**: its newest state is at least ``idle_s`` older than the newest state recorded for the
      process. The clock is the platform's (state timestamps), not the wall clock, so a replayed
      log and a live feed behave alike. An idle case has no invented ending (``Case.ended`` False),
      as the importers leave a case that was still open when its log was exported.

    A session that goes on after it was complete (the operator reopens it) is open again until it
    closes or idles again.
    """

    ending_actions: frozenset[str] = Field(
        default=frozenset({"close_chat"}), description="Action types after which an operator's session has ended."
    )
    idle_s: float = Field(default=86_400.0, gt=0, description="No new state for this long: the session is over.")


class RecordedState(_StoreModel):
    """One ``UIStateChanged`` as the trace table keeps it."""

    process_id: str
    session_id: str
    business_cluster: str
    state_version: int = Field(ge=0)
    event_id: str
    timestamp: AwareDatetime
    actor: Actor
    ui_state: UIState
    last_action: Action | None = None
    received_at: AwareDatetime

    @property
    def operator_step(self) -> bool:
        """This state was produced by an operator's own action (``last_action``)."""
        return self.actor is Actor.operator and self.last_action is not None


class RecordedSession(_StoreModel):
    """A complete case as recorded: its states in version order (see :class:`CaseCompletion`)."""

    process_id: str
    session_id: str
    business_cluster: str = Field(description="Of the first state stored.")
    first_at: AwareDatetime
    last_at: AwareDatetime
    closed: bool = Field(description="Ended by an operator's ending action; False: complete because idle.")
    states: list[RecordedState] = Field(default_factory=list)
