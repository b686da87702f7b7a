"""The learning loop's evidence, built from stored feedback: critic examples, policy examples and the
outcomes that watch a certificate.

Every label says how it was obtained, because that decides what it may be used for
(docs/guarantee.md):

* ``exploration``: the step was labelled whatever its critic score (the copilot stage, or a session
  of the exploration holdout while its cluster is selective). Only such labels are a sample of all
  steps, so only they certify thresholds.
* ``deferred``: a selective-stage deferral. It was labelled *because* the gate did not pass it
  (low score, guardrail): its labels say nothing about the steps that run, and their acceptance rate
  drops after promotion by construction. They still train the critic: which steps get labelled
  depends on the state only, so P(accepted | state, action) is learned without bias from them.
* audits and the exploration steps the gate would have executed are :class:`MonitorOutcome`\\ s: a
  random sample, with a known probability, of the steps that run, which is what the precision
  monitor needs.

Graded feedback stays first-class: an ``acceptable_alternative`` is a positive critic label (the
suggestion was fine) but keeps its verdict, so reports can count it apart from plain accepts.
Only feedback whose proposal was recorded can become a critic or policy example: without it there
is no state.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from selective_autonomy.inference.protocol import Candidate, CriticInput, PolicySignals, Proposal
from selective_autonomy.schemas.event_parts import Action, ActionTier, Stage, Verdict
from selective_autonomy.schemas.events import CopilotFeedback, UIStateChanged
from selective_autonomy.store.models import FeedbackWithContext, JudgedStep, ProposalRecord

POSITIVE_VERDICTS = frozenset({Verdict.accepted, Verdict.acceptable_alternative})


def label_of(verdict: Verdict) -> bool:
    """The critic's binary label: accepted and acceptable_alternative are True, corrected is False."""
    return verdict in POSITIVE_VERDICTS


class EvidenceSource(StrEnum):
    exploration = "exploration"  # labelled whatever its score: copilot stage or exploration holdout
    deferred = "deferred"  # a selective-stage deferral: labelled because the gate did not pass it


class CriticExample(BaseModel):
    """One (state, suggested action) pair with the operator's graded verdict on it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    feedback_id: str
    event: UIStateChanged
    action: Action = Field(description="The suggestion the operator judged.")
    action_id: str | None = None
    tier: ActionTier
    candidates: list[Candidate] = Field(default_factory=list, description="The policy's ranked candidates.")
    signals: PolicySignals = Field(description="Policy signals of the suggestion among the candidates.")
    policy_probability: float | None = None
    critic_score: float | None = Field(default=None, description="The critic's score when it was suggested.")
    policy_version: str | None = None
    critic_version: str | None = None
    process_id: str
    business_cluster: str
    step_index: int = Field(ge=0, description="The state version the suggestion was made at.")
    verdict: Verdict
    label: bool
    operator_action: Action | None = Field(default=None, description="What the operator did instead, if not accepted.")
    source: EvidenceSource = EvidenceSource.exploration
    given_at: AwareDatetime = Field(description="When the operator answered: orders the evidence in time.")
    received_at: AwareDatetime = Field(
        description="When the store received it: the loop's own clock, which promotions and alarms are marked on "
        "(answer times need not increase in the order the loop sees them: replays, late answers)."
    )

    def critic_input(self) -> CriticInput:
        """What the critic scores at run time, for this example."""
        return CriticInput(event=self.event, action=self.action, tier=self.tier, signals=self.signals)


class PolicyExample(BaseModel):
    """One (state, action an operator endorsed or took) pair for training the policy."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    feedback_id: str
    event: UIStateChanged
    action: Action = Field(description="The suggestion when accepted, else the operator's own action.")
    verdict: Verdict
    process_id: str
    business_cluster: str
    step_index: int = Field(ge=0)
    source: EvidenceSource = EvidenceSource.exploration
    given_at: AwareDatetime = Field(description="When the operator answered: the clock the evidence splits follow.")


class MonitorOutcome(BaseModel):
    """A step that ran (an audit) or would have run (an exploration step the gate passed), judged."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    feedback_id: str
    process_id: str
    business_cluster: str
    accepted: bool
    inclusion_probability: float = Field(gt=0.0, le=1.0, description="P(this step was sampled for a label).")
    critic_version: str | None = None
    given_at: AwareDatetime
    received_at: AwareDatetime
    audit: bool = Field(description="An audit of an executed step (else an exploration step).")


def source_of(stage: Stage) -> EvidenceSource:
    return EvidenceSource.exploration if stage is not Stage.selective else EvidenceSource.deferred


def _answered_deferrals(
    rows: Iterable[FeedbackWithContext],
) -> Iterator[tuple[FeedbackWithContext, ProposalRecord, CopilotFeedback]]:
    """Each answered deferral whose proposal was recorded (audits are not): the row, its proposal, its answer."""
    for row in rows:
        if row.context is not None and not row.feedback.is_audit:
            yield row, row.context, row.feedback


def critic_examples(rows: Iterable[FeedbackWithContext]) -> list[CriticExample]:
    """One example per answered deferral that has a recorded proposal, a suggestion and a tier."""
    examples = []
    for row, context, item in _answered_deferrals(rows):
        suggestion = item.suggestion or context.suggestion
        if suggestion is None or context.tier is None:
            continue
        examples.append(
            CriticExample(
                feedback_id=item.feedback_id,
                event=context.event,
                action=suggestion,
                action_id=item.suggestion_action_id or context.suggestion_action_id,
                tier=context.tier,
                candidates=context.candidates,
                signals=_signals(context.candidates, suggestion, context.policy_version or ""),
                policy_probability=context.policy_probability,
                critic_score=context.critic_score,
                policy_version=context.policy_version,
                critic_version=context.critic_version,
                process_id=item.process_id,
                business_cluster=item.business_cluster,
                step_index=context.state_version,
                verdict=item.verdict,
                label=label_of(item.verdict),
                operator_action=item.operator_action,
                source=source_of(context.stage),
                given_at=item.given_at,
                received_at=row.received_at,
            )
        )
    return examples


def monitor_outcomes(steps: Iterable[JudgedStep]) -> list[MonitorOutcome]:
    """Audits of executed steps, and answers to exploration steps the gate would have executed."""
    return [
        MonitorOutcome(
            feedback_id=step.feedback_id,
            process_id=step.process_id,
            business_cluster=step.business_cluster,
            accepted=label_of(step.verdict),
            inclusion_probability=step.inclusion_probability or 1.0,
            critic_version=step.critic_version,
            given_at=step.given_at,
            received_at=step.received_at,
            audit=step.audit,
        )
        for step in steps
    ]


def policy_examples(rows: Iterable[FeedbackWithContext]) -> list[PolicyExample]:
    """(state, suggestion) for each accept; (state, operator action) for each correction or alternative."""
    examples = []
    for _, context, item in _answered_deferrals(rows):
        accepted = item.verdict is Verdict.accepted
        action = (item.suggestion or context.suggestion) if accepted else item.operator_action
        if action is None:
            continue
        examples.append(
            PolicyExample(
                feedback_id=item.feedback_id,
                event=context.event,
                action=action,
                verdict=item.verdict,
                process_id=item.process_id,
                business_cluster=item.business_cluster,
                step_index=context.state_version,
                source=source_of(context.stage),
                given_at=item.given_at,
            )
        )
    return examples


def verdict_counts(examples: Iterable[CriticExample]) -> dict[Verdict, int]:
    """How many examples carry each verdict (every verdict present), e.g. for a report's table."""
    counted = Counter(example.verdict for example in examples)
    return {verdict: counted.get(verdict, 0) for verdict in Verdict}


def _signals(candidates: list[Candidate], action: Action, policy_version: str) -> PolicySignals:
    rank = next((i for i, candidate in enumerate(candidates) if candidate.action == action), len(candidates))
    return PolicySignals.of(Proposal(candidates=candidates, policy_version=policy_version), rank)
