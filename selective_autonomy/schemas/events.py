"""Pydantic mirrors of the Avro event contracts in ``avro/``: the top-level records.

Field names, order and optionality follow the ``.avsc`` files exactly; a unit test checks that
each model has the same fields as its record and round-trips through fastavro. The values, enums
and nested records they are built from (``Action``, ``UIState``, ``Stage``...) are in
:mod:`event_parts`.

Evolution rule: a new version of a record may only add fields that have a default (optional
fields), and bump ``schema_version``. Never rename, remove or retype a field; never add an enum
symbol to an enum without a default.
"""

from __future__ import annotations

import hashlib
from typing import Any, ClassVar, Self

from pydantic import AwareDatetime, Field, model_validator

from selective_autonomy.errors import ContractError
from selective_autonomy.schemas.event_parts import (
    CURRENT_SCHEMA_VERSION,
    TIME_ZONE_PATTERN,
    Action,
    ActionTier,
    Actor,
    ContractModel,
    DeferralReason,
    Executor,
    RankedAction,
    Stage,
    UIState,
    Verdict,
    new_id,
    utc_now,
)
from selective_autonomy.schemas.identifiers import Name, OpaqueId, ProcessId


def action_id_for(session_id: str, state_version: int, action: Action) -> str:
    """Deterministic id of an action taken at one state of one session.

    Any consumer (the BPM executor, the session table) can deduplicate on it: the same decision,
    redelivered or recomputed after a crash, always gets the same id.
    """
    material = f"{session_id}\x1f{state_version}\x1f{action.canonical_json()}"
    return hashlib.sha256(material.encode()).hexdigest()[:32]


class EventModel(ContractModel):
    """A top-level record that travels on a topic under its Avro record name."""

    avro_name: ClassVar[str]


class UIStateChanged(EventModel):
    avro_name: ClassVar[str] = "UIStateChanged"

    schema_version: int = CURRENT_SCHEMA_VERSION
    event_id: OpaqueId = Field(default_factory=new_id)
    session_id: OpaqueId
    process_id: ProcessId
    business_cluster: Name
    state_version: int = Field(ge=0)
    timestamp: AwareDatetime = Field(
        default_factory=utc_now,
        description="RFC 3339 date-time with its time zone (Z or +hh:mm); a time without one is refused.",
        json_schema_extra={"pattern": TIME_ZONE_PATTERN},
    )
    actor: Actor = Actor.system
    ui_state: UIState = Field(default_factory=UIState)
    last_action: Action | None = None
    last_action_id: OpaqueId | None = None


class ActionEvent(EventModel):
    """The fields that open every record about one action at one state of a session (proposed,
    executed, failed), in their contract order; each record's own fields follow them."""

    schema_version: int = CURRENT_SCHEMA_VERSION
    action_id: str
    event_id: str
    session_id: OpaqueId
    process_id: ProcessId
    business_cluster: Name
    state_version: int = Field(ge=0)
    action: Action


class ActionProposed(ActionEvent):
    avro_name: ClassVar[str] = "ActionProposed"

    tier: ActionTier
    policy_probability: float = Field(ge=0.0, le=1.0)
    critic_score: float | None = Field(default=None, ge=0.0, le=1.0)
    policy_version: str
    critic_version: str | None = None
    proposed_at: AwareDatetime = Field(default_factory=utc_now)


class ActionExecuted(ActionEvent):
    avro_name: ClassVar[str] = "ActionExecuted"

    tier: ActionTier
    policy_probability: float | None = Field(default=None, ge=0.0, le=1.0)
    critic_score: float | None = Field(default=None, ge=0.0, le=1.0)
    threshold: float | None = None
    policy_version: str | None = None
    critic_version: str | None = None
    executed_by: Executor = Executor.system
    operator_id: str | None = None
    decided_at: AwareDatetime = Field(default_factory=utc_now)

    @model_validator(mode="after")
    def _id_matches_action(self) -> Self:
        expected = action_id_for(self.session_id, self.state_version, self.action)
        if self.action_id != expected:
            raise ValueError(f"action_id {self.action_id!r} is not the id of this action ({expected})")
        return self


class OperatorDeferral(EventModel):
    avro_name: ClassVar[str] = "OperatorDeferral"

    schema_version: int = 2  # v2 added stage, inclusion_probability and state_at
    deferral_id: str = Field(default_factory=new_id)
    event_id: str
    session_id: OpaqueId
    process_id: ProcessId
    business_cluster: Name
    state_version: int = Field(ge=0)
    ui_state: UIState
    suggestion: Action | None = None
    suggestion_action_id: str | None = None
    tier: ActionTier | None = None
    policy_probability: float | None = Field(default=None, ge=0.0, le=1.0)
    critic_score: float | None = Field(default=None, ge=0.0, le=1.0)
    threshold: float | None = None
    reason: DeferralReason = DeferralReason.unspecified
    detail: str = ""
    policy_version: str | None = None
    critic_version: str | None = None
    candidates: list[RankedAction] = Field(default_factory=list)
    deferred_at: AwareDatetime = Field(default_factory=utc_now)
    stage: Stage = Field(
        description="v2: the stage the step was handled in; copilot for a session of the exploration holdout. "
        "Null only in v1 records, which are read as the v1 rule said (see _v1_stage)."
    )
    inclusion_probability: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="v2: P(this step is labelled whatever its score); None where that depends on the score.",
    )
    state_at: AwareDatetime | None = Field(default=None, description="v2: the timestamp of the state it answers.")

    @model_validator(mode="before")
    @classmethod
    def _v1_stage(cls, data: Any) -> Any:
        # v1 did not record the stage; only a copilot-stage deferral said where it came from, every
        # other v1 deferral came from the selective stage. Newer records must state it.
        if isinstance(data, dict) and data.get("stage") is None and data.get("schema_version", 2) < 2:
            copilot = data.get("reason") in (DeferralReason.copilot_stage, DeferralReason.copilot_stage.value)
            return {**data, "stage": Stage.copilot if copilot else Stage.selective}
        return data

    def state_event(self) -> UIStateChanged:
        """The state this deferral answers, rebuilt from what it carries (a v1 deferral did not carry the
        state's time: its own stands in)."""
        return UIStateChanged(
            event_id=self.event_id,
            session_id=self.session_id,
            process_id=self.process_id,
            business_cluster=self.business_cluster,
            state_version=self.state_version,
            timestamp=self.state_at or self.deferred_at,
            ui_state=self.ui_state,
        )

    def executed(self, action: Action, *, accepted: bool, tier: ActionTier, operator_id: str) -> ActionExecuted:
        """The execution of an operator's answer: ``action`` (the suggestion when ``accepted``) in this
        deferral's state. The model's numbers describe the suggestion: they are kept only when it ran."""
        return ActionExecuted(
            action_id=action_id_for(self.session_id, self.state_version, action),
            event_id=self.event_id,
            session_id=self.session_id,
            process_id=self.process_id,
            business_cluster=self.business_cluster,
            state_version=self.state_version,
            action=action,
            tier=tier,
            policy_probability=self.policy_probability if accepted else None,
            critic_score=self.critic_score if accepted else None,
            threshold=self.threshold if accepted else None,
            policy_version=self.policy_version if accepted else None,
            critic_version=self.critic_version if accepted else None,
            executed_by=Executor.operator,
            operator_id=operator_id,
        )


class CopilotFeedback(EventModel):
    """An operator's judgement of a suggestion. With a ``deferral_id`` it answers a deferral; without
    one it is an audit of an action executed unattended (``suggestion_action_id`` names it), which
    is how the realised precision of selective execution is measured."""

    avro_name: ClassVar[str] = "CopilotFeedback"

    @property
    def is_audit(self) -> bool:
        return self.deferral_id is None and self.suggestion_action_id is not None

    schema_version: int = 2  # v2 added inclusion_probability
    feedback_id: str = Field(default_factory=new_id)
    deferral_id: str | None = None
    session_id: OpaqueId
    process_id: ProcessId
    business_cluster: Name
    state_version: int = Field(ge=0)
    suggestion: Action | None = None
    suggestion_action_id: str | None = None
    verdict: Verdict
    operator_action: Action | None = None
    operator_id: str = Field(min_length=1)
    latency_ms: int = Field(ge=0)
    policy_probability: float | None = Field(default=None, ge=0.0, le=1.0)
    critic_score: float | None = Field(default=None, ge=0.0, le=1.0)
    policy_version: str | None = None
    critic_version: str | None = None
    given_at: AwareDatetime = Field(default_factory=utc_now)
    inclusion_probability: float | None = Field(
        default=None, gt=0.0, le=1.0, description="v2: for an audit, P(this executed step was sampled for audit)."
    )

    @model_validator(mode="after")
    def _verdict_is_complete(self) -> Self:
        if self.verdict is Verdict.accepted and self.suggestion is None:
            raise ValueError("an accepted verdict needs the suggestion it accepts")
        if self.verdict is not Verdict.accepted and self.operator_action is None:
            raise ValueError(f"verdict {self.verdict.value!r} needs the operator's own action")
        return self

    @classmethod
    def for_answer(
        cls,
        deferral: OperatorDeferral,
        *,
        verdict: Verdict,
        operator_action: Action | None,
        operator_id: str,
        latency_ms: int,
        **extra: Any,
    ) -> CopilotFeedback:
        """An operator's answer to ``deferral``: its ids, suggestion, scores and versions, and the verdict.

        :param extra: further fields, e.g. ``feedback_id`` (default a new id) or ``given_at`` (default now).
        """
        return cls(
            deferral_id=deferral.deferral_id,
            session_id=deferral.session_id,
            process_id=deferral.process_id,
            business_cluster=deferral.business_cluster,
            state_version=deferral.state_version,
            suggestion=deferral.suggestion,
            suggestion_action_id=deferral.suggestion_action_id,
            verdict=verdict,
            operator_action=operator_action,
            operator_id=operator_id,
            latency_ms=max(0, latency_ms),
            policy_probability=deferral.policy_probability,
            critic_score=deferral.critic_score,
            policy_version=deferral.policy_version,
            critic_version=deferral.critic_version,
            **extra,
        )

    @classmethod
    def for_audit(
        cls,
        executed: ActionExecuted,
        *,
        operator_action: Action | None,
        operator_id: str,
        latency_ms: int,
        inclusion_probability: float | None,
        **extra: Any,
    ) -> CopilotFeedback:
        """An audit of an unattended step: ``operator_action`` None means it was right (accepted), else
        the operator's correction.

        :param inclusion_probability: P(the step was sampled for audit).
        :param extra: further fields, e.g. ``feedback_id`` (default a new id) or ``given_at`` (default now).
        """
        return cls(
            deferral_id=None,
            session_id=executed.session_id,
            process_id=executed.process_id,
            business_cluster=executed.business_cluster,
            state_version=executed.state_version,
            suggestion=executed.action,
            suggestion_action_id=executed.action_id,
            verdict=Verdict.accepted if operator_action is None else Verdict.corrected,
            operator_action=operator_action,
            operator_id=operator_id,
            latency_ms=max(0, latency_ms),
            policy_probability=executed.policy_probability,
            critic_score=executed.critic_score,
            policy_version=executed.policy_version,
            critic_version=executed.critic_version,
            inclusion_probability=inclusion_probability,
            **extra,
        )

    @property
    def executed_action(self) -> Action:
        """The action that actually ran: the suggestion when accepted, else the operator's."""
        action = self.suggestion if self.verdict is Verdict.accepted else self.operator_action
        if action is None:  # _verdict_is_complete refuses such a record; model_construct could still make one
            raise ContractError(f"feedback {self.feedback_id}: verdict {self.verdict.value} without its action")
        return action


class DeadLetter(EventModel):
    avro_name: ClassVar[str] = "DeadLetter"

    schema_version: int = CURRENT_SCHEMA_VERSION
    original: bytes
    key: bytes | None = None
    topic: str
    partition: int
    offset: int
    error: str
    error_type: str
    failed_at: AwareDatetime = Field(default_factory=utc_now)


class StageChanged(EventModel):
    avro_name: ClassVar[str] = "StageChanged"

    schema_version: int = CURRENT_SCHEMA_VERSION
    process_id: ProcessId
    business_cluster: Name
    from_stage: Stage
    to_stage: Stage
    reason: str
    certified_coverage: float | None = None
    rolling_precision: float | None = None
    thresholds_version: str | None = None
    changed_at: AwareDatetime = Field(default_factory=utc_now)


class ActionFailed(ActionEvent):
    """An executed action the BPM executor could not apply; an ``OperatorDeferral`` with reason
    ``execution_failed`` goes out with it, so the session is never silently dropped."""

    avro_name: ClassVar[str] = "ActionFailed"

    status_code: int | None = None
    response_excerpt: str = ""
    error: str = ""
    attempts: int = Field(ge=0)
    failed_at: AwareDatetime = Field(default_factory=utc_now)


EVENT_MODELS: dict[str, type[EventModel]] = {
    model.avro_name: model
    for model in (
        UIStateChanged,
        ActionProposed,
        ActionExecuted,
        OperatorDeferral,
        CopilotFeedback,
        DeadLetter,
        StageChanged,
        ActionFailed,
    )
}
