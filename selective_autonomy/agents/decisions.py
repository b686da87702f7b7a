"""From a batch of UI states to decisions, and from decisions to output events. No Kafka here.

The engine batches across sessions per process (one policy call, one critic call), applies the
gate to each session, and turns each decision into exactly one record: ``ActionExecuted``,
``OperatorDeferral``, or in the logging stage ``ActionProposed``. Ids are deterministic, so a
decision recomputed after a crash yields the same records and downstream deduplicates them.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

from pydantic import BaseModel, ConfigDict

from selective_autonomy.agents.gate import GateDecision, GateOutcome, SessionProgress, gate
from selective_autonomy.config import DEFAULT_TOP_K
from selective_autonomy.errors import DecisionError
from selective_autonomy.inference.protocol import (
    CriticInput,
    ModelUnavailable,
    PolicySignals,
    Proposal,
    computes_locally,
)
from selective_autonomy.inference.registry import ProcessModels
from selective_autonomy.schemas.event_parts import ActionTier, DeferralReason, RankedAction, Stage
from selective_autonomy.schemas.events import (
    ActionExecuted,
    ActionProposed,
    EventModel,
    OperatorDeferral,
    UIStateChanged,
    action_id_for,
)
from selective_autonomy.schemas.sampling import in_exploration_holdout

log = logging.getLogger(__name__)


def deferral_id_for(session_id: str, state_version: int) -> str:
    """Deterministic: one state of one session is deferred at most once, whatever the replays."""
    return hashlib.sha256(f"deferral\x1f{session_id}\x1f{state_version}".encode()).hexdigest()[:32]


class Decision(BaseModel):
    model_config = ConfigDict(frozen=True)

    event: UIStateChanged
    stage: Stage
    gate: GateDecision
    proposal: Proposal | None = None
    critic_score: float | None = None
    critic_version: str | None = None
    holdout: bool = False
    exploration_share: float = 0.0

    @property
    def outcome(self) -> GateOutcome:
        return self.gate.outcome

    # Cached: the record, the session table and the span each need the id (a hash of canonical JSON).
    @cached_property
    def action_id(self) -> str | None:
        if self.gate.action is None:
            return None
        return action_id_for(self.event.session_id, self.event.state_version, self.gate.action)

    @cached_property
    def deferral_id(self) -> str:
        return deferral_id_for(self.event.session_id, self.event.state_version)

    @property
    def handled_in(self) -> Stage:
        """The stage the step was handled in: copilot for a session of the exploration holdout."""
        return Stage.copilot if self.holdout else self.stage

    @property
    def inclusion_probability(self) -> float | None:
        """P(the step is labelled whatever its score): 1 in copilot, the holdout share in the holdout,
        None for a selective-stage deferral (labelled because the gate did not pass it)."""
        if self.holdout:
            return self.exploration_share
        return 1.0 if self.stage is Stage.copilot else None

    @property
    def policy_probability(self) -> float | None:
        top = self.proposal.top if self.proposal else None
        return top.probability if top else None

    def output(self) -> EventModel | None:
        """The one record this decision produces (None only in logging with nothing proposed)."""
        event = self.event
        common = {
            "event_id": event.event_id,
            "session_id": event.session_id,
            "process_id": event.process_id,
            "business_cluster": event.business_cluster,
            "state_version": event.state_version,
        }
        versions = {
            "policy_version": self.proposal.policy_version if self.proposal else None,
            "critic_version": self.critic_version,
        }
        action, action_id = self.gate.action, self.action_id
        if self.outcome is GateOutcome.execute:
            if action is None or action_id is None or self.gate.tier is None:
                raise DecisionError(f"{event.session_id}: an execution without an action or a tier")
            return ActionExecuted(
                action_id=action_id,
                action=action,
                tier=self.gate.tier,
                policy_probability=self.policy_probability,
                critic_score=self.critic_score,
                threshold=self.gate.threshold,
                **common,
                **versions,
            )
        if self.outcome is GateOutcome.defer:
            if self.gate.reason is None:
                raise DecisionError(f"{event.session_id}: a deferral without a reason")
            return OperatorDeferral(
                deferral_id=self.deferral_id,
                ui_state=event.ui_state,
                suggestion=action,
                suggestion_action_id=action_id,
                tier=self.gate.tier,
                policy_probability=self.policy_probability,
                critic_score=self.critic_score,
                threshold=self.gate.threshold,
                reason=self.gate.reason,
                detail=self.gate.detail,
                stage=self.handled_in,
                inclusion_probability=self.inclusion_probability,
                state_at=event.timestamp,
                candidates=[
                    RankedAction(action=c.action, probability=c.probability)
                    for c in (self.proposal.candidates if self.proposal else [])
                ],
                **common,
                **versions,
            )
        if action is None or action_id is None:
            return None
        return ActionProposed(
            action_id=action_id,
            action=action,
            tier=self.gate.tier or ActionTier.critical,
            policy_probability=self.policy_probability or 0.0,
            critic_score=self.critic_score,
            policy_version=versions["policy_version"] or "none",
            critic_version=self.critic_version,
            **common,
        )


def without_models(event: UIStateChanged, detail: str) -> Decision:
    """A person takes the step: no model answered for it (none in service, or none in time).
    Deferred without a suggestion, so the answer is no evidence for a certificate."""
    return Decision(
        event=event,
        stage=Stage.logging,
        gate=GateDecision(outcome=GateOutcome.defer, reason=DeferralReason.model_unavailable, detail=detail),
    )


def timed_out(state: UIStateChanged, deadline_s: float, still_busy: bool = False) -> Decision:
    """The state deferred because the models missed their deadline."""
    if still_busy:
        return without_models(state, f"the models are still on a call that missed its {deadline_s:g} s deadline")
    return without_models(state, f"the models did not answer within {deadline_s:g} s")


@dataclass
class DecisionEngine:
    """Decides batches of UI states with the models currently in service."""

    models: Mapping[str, ProcessModels]
    top_k: int = DEFAULT_TOP_K
    unavailable: Mapping[str, str] = field(default_factory=dict)
    """Registered processes (a schema is in the registry) with no model that loads, and why: their
    states are deferred to an operator as ``model_unavailable``, not dead-lettered."""

    def knows(self, process_id: str) -> bool:
        return process_id in self.models or process_id in self.unavailable

    def computes_locally(self, events: Sequence[UIStateChanged]) -> bool:
        """Whether deciding ``events`` waits on nothing outside this process: every model it would
        call computes locally (a process without models defers at once)."""
        for process_id in {event.process_id for event in events}:
            models = self.models.get(process_id)
            if models is not None and not (computes_locally(models.policy) and computes_locally(models.critic)):
                return False
        return True

    def decide(self, events: Sequence[UIStateChanged], progress: Mapping[str, SessionProgress]) -> list[Decision]:
        """One decision per event, in input order. Every event's process must be known."""
        decisions: dict[int, Decision] = {}
        by_process: dict[str, list[int]] = {}
        for index, event in enumerate(events):
            by_process.setdefault(event.process_id, []).append(index)
        for process_id, indices in by_process.items():
            batch = [events[i] for i in indices]
            models = self.models.get(process_id)
            decided = (
                self._decide_process(models, batch, progress)
                if models is not None
                else [without_models(event, f"no models in service: {self.unavailable[process_id]}") for event in batch]
            )
            for index, decision in zip(indices, decided, strict=True):
                decisions[index] = decision
        return [decisions[i] for i in range(len(events))]

    def _decide_process(
        self, models: ProcessModels, events: list[UIStateChanged], progress: Mapping[str, SessionProgress]
    ) -> list[Decision]:
        stages = [models.pointer.stage(e.business_cluster) for e in events]
        proposals: list[Proposal | None]
        model_error: str | None = None
        try:
            proposals = list(models.policy.propose(events, top_k=self.top_k))
        except ModelUnavailable as exc:
            proposals, model_error = [None] * len(events), f"policy unavailable: {exc}"
        except Exception as exc:  # a model bug must cost a deferral, never the worker
            log.exception("policy %s failed", models.policy.version)
            proposals, model_error = [None] * len(events), f"policy failed: {type(exc).__name__}: {exc}"

        scores = self._scores(models, events, proposals, stages)
        pointer = models.pointer
        decisions = []
        for i, event in enumerate(events):
            score = scores[i]
            holdout = stages[i] is Stage.selective and in_exploration_holdout(
                event.session_id, pointer.exploration_share
            )
            pause = pointer.pause_for(event.business_cluster)
            verdict = gate(
                schema=models.schema,
                business_cluster=event.business_cluster,
                stage=stages[i],
                proposal=proposals[i],
                critic_score=score,
                thresholds=pointer.thresholds,
                progress=progress.get(event.session_id, SessionProgress()),
                model_error=model_error,
                certificate=pointer.certificates.get(event.business_cluster),
                holdout=holdout,
                step=event.state_version,
                paused=pause[1].detail(pause[0]) if pause is not None else None,
            )
            decisions.append(
                Decision(
                    event=event,
                    stage=stages[i],
                    gate=verdict,
                    proposal=proposals[i],
                    critic_score=score,
                    critic_version=models.critic.version,
                    holdout=holdout,
                    exploration_share=pointer.exploration_share,
                )
            )
        return decisions

    def _scores(
        self,
        models: ProcessModels,
        events: list[UIStateChanged],
        proposals: list[Proposal | None],
        stages: list[Stage],
    ) -> list[float | None]:
        """Critic scores of each top candidate; None where there is no candidate, in the logging
        stage, or everywhere when the critic could not answer (the gate then defers)."""
        inputs: list[CriticInput] = []
        where: list[int] = []
        for i, (event, proposal) in enumerate(zip(events, proposals, strict=True)):
            top = proposal.top if proposal else None
            if top is None or proposal is None or stages[i] is Stage.logging:
                continue
            spec = models.schema.action(top.action.action_type)
            tier = spec.tier if spec else ActionTier.critical
            inputs.append(CriticInput(event=event, action=top.action, tier=tier, signals=PolicySignals.of(proposal, 0)))
            where.append(i)
        scores: list[float | None] = [None] * len(events)
        if not inputs:
            return scores
        try:
            values = models.critic.score(inputs)
        except Exception:  # a critic failure defers the steps it should have scored
            log.exception("critic %s failed", models.critic.version)
            return scores
        for i, value in zip(where, values, strict=True):
            scores[i] = min(1.0, max(0.0, float(value)))
        return scores
