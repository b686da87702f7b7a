"""The gate's checks, each in isolation and in its fixed order."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from selective_autonomy.agents.gate import GateOutcome, SessionProgress, gate
from selective_autonomy.inference.certificate import Certificate, CertifiedKey
from selective_autonomy.inference.protocol import Candidate, Proposal
from selective_autonomy.inference.thresholds import Thresholds
from selective_autonomy.schemas.event_parts import Action, ActionTier, DeferralReason, Stage
from tests.factories import BILLING as SCHEMA
from tests.factories import T0

LOOKUP = Action(action_type="lookup_order", arguments={"order_id": "A1"})
INVOICE = Action(action_type="send_invoice")
REFUND = Action(action_type="refund", arguments={"amount": 10.0})
ALL = Thresholds(values={f"billing/{c}/{t.value}": 0.8 for c in ("retail", "vip") for t in ActionTier})


def run(
    action: Action | None,
    score: float | None = 0.95,
    stage: Stage = Stage.selective,
    cluster: str = "retail",
    thresholds: Thresholds = ALL,
    steps: int = 0,
    error: str | None = None,
):  # type: ignore[no-untyped-def]
    proposal = (
        None if action is None else Proposal(candidates=[Candidate(action=action, probability=0.9)], policy_version="p")
    )
    return gate(
        schema=SCHEMA,
        business_cluster=cluster,
        stage=stage,
        proposal=proposal,
        critic_score=score,
        thresholds=thresholds,
        progress=SessionProgress(autonomous_steps=steps),
        model_error=error,
    )


def test_passes_when_every_check_holds() -> None:
    decision = run(LOOKUP)
    assert decision.outcome is GateOutcome.execute
    assert decision.threshold == 0.8
    assert decision.tier is ActionTier.auto


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"action": None}, DeferralReason.model_unavailable),
        ({"action": LOOKUP, "error": "timeout"}, DeferralReason.model_unavailable),
        ({"action": LOOKUP, "stage": Stage.copilot}, DeferralReason.copilot_stage),
        ({"action": Action(action_type="lookup_order")}, DeferralReason.schema_violation),
        ({"action": Action(action_type="format_disk")}, DeferralReason.schema_violation),
        ({"action": REFUND, "score": 1.0}, DeferralReason.approval_required),
        ({"action": INVOICE, "cluster": "unknown"}, DeferralReason.guardrail),
        ({"action": Action(action_type="close_chat"), "cluster": "vip"}, DeferralReason.guardrail),
        ({"action": INVOICE, "cluster": "vip", "steps": 2}, DeferralReason.guardrail),
        ({"action": INVOICE, "thresholds": Thresholds()}, DeferralReason.below_threshold),
        ({"action": INVOICE, "score": 0.79}, DeferralReason.below_threshold),
        ({"action": INVOICE, "score": None}, DeferralReason.model_unavailable),
    ],
)
def test_each_failed_check_defers_with_its_reason(kwargs: dict, reason: DeferralReason) -> None:
    decision = run(**kwargs)
    assert decision.outcome is GateOutcome.defer
    assert decision.reason is reason
    assert decision.detail


def test_logging_stage_only_records() -> None:
    assert run(LOOKUP, stage=Stage.logging).outcome is GateOutcome.record
    assert run(None, stage=Stage.logging).outcome is GateOutcome.record


def test_score_at_threshold_passes() -> None:
    assert run(INVOICE, score=0.8).outcome is GateOutcome.execute


@given(
    score=st.floats(0.0, 1.0),
    stage=st.sampled_from(list(Stage)),
    steps=st.integers(0, 10),
    cluster=st.sampled_from(["retail", "vip", "other"]),
)
def test_approval_required_and_invalid_actions_never_execute(
    score: float, stage: Stage, steps: int, cluster: str
) -> None:
    for action in (REFUND, Action(action_type="refund"), Action(action_type="drop_tables", arguments={"x": 1})):
        assert run(action, score=score, stage=stage, steps=steps, cluster=cluster).outcome is not GateOutcome.execute


def certificate(judged: int = 500, max_step: int = 6) -> Certificate:
    key = "billing/retail/auto/lookup_order"
    return Certificate(
        business_cluster="retail",
        issued_at=T0,
        critic_version="c",
        policy_version="p",
        target_precision=0.9,
        confidence=0.9,
        keys={key: CertifiedKey(threshold=0.8, samples=judged, coverage=0.5, max_step=max_step)},
        judged_actions={"lookup_order": judged},
        min_judgements=50,
    )


def run_certified(cert: Certificate | None, *, step: int = 2, holdout: bool = False, score: float = 0.95):  # type: ignore[no-untyped-def]
    proposal = Proposal(candidates=[Candidate(action=LOOKUP, probability=0.9)], policy_version="p")
    return gate(
        schema=SCHEMA,
        business_cluster="retail",
        stage=Stage.selective,
        proposal=proposal,
        critic_score=score,
        thresholds=Thresholds(values={"billing/retail/auto/lookup_order": 0.8}),
        progress=SessionProgress(),
        certificate=cert,
        holdout=holdout,
        step=step,
    )


def test_an_action_type_threshold_is_looked_up_before_the_tier_one() -> None:
    thresholds = Thresholds(values={"billing/retail/auto": 0.5, "billing/retail/auto/lookup_order": 0.97})
    assert thresholds.get("billing", "retail", ActionTier.auto, "lookup_order") == 0.97
    assert thresholds.get("billing", "retail", ActionTier.auto, "other") == 0.5
    assert run(LOOKUP, score=0.95, thresholds=thresholds).reason is DeferralReason.below_threshold


def test_nothing_runs_outside_what_the_certificate_was_earned_on() -> None:
    assert run_certified(certificate()).outcome is GateOutcome.execute
    rare = run_certified(certificate(judged=10))
    assert rare.reason is DeferralReason.novel_situation and "judged 10 times" in rare.detail
    far = run_certified(certificate(), step=9)
    assert far.reason is DeferralReason.novel_situation and "further into the case" in far.detail
    # Without a certificate (thresholds set by hand) the gate has nothing to compare against.
    assert run_certified(None, step=9).outcome is GateOutcome.execute


def test_a_session_of_the_exploration_holdout_is_judged_instead_of_run() -> None:
    decision = run_certified(certificate(), holdout=True)
    assert decision.reason is DeferralReason.exploration and decision.threshold == 0.8
    # The holdout never turns a deferral into something else: below the threshold stays below.
    assert run_certified(certificate(), holdout=True, score=0.5).reason is DeferralReason.below_threshold


# -- a pause by hand -----------------------------------------------------------------------------------


def run_paused(**kwargs):  # type: ignore[no-untyped-def]
    """``run_certified``'s step, paused: the pause's detail is what the gate is given."""
    proposal = Proposal(candidates=[Candidate(action=LOOKUP, probability=0.9)], policy_version="p")
    options = {
        "schema": SCHEMA,
        "business_cluster": "retail",
        "stage": Stage.selective,
        "proposal": proposal,
        "critic_score": 0.95,
        "thresholds": Thresholds(values={"billing/retail/auto/lookup_order": 0.8}),
        "progress": SessionProgress(),
        "paused": "autonomy paused by alice: incident 42",
    }
    return gate(**(options | kwargs))


def test_a_paused_step_that_would_run_is_deferred_as_paused_with_its_threshold() -> None:
    decision = run_paused()
    assert decision.outcome is GateOutcome.defer and decision.reason is DeferralReason.paused
    assert decision.detail == "autonomy paused by alice: incident 42"
    assert decision.action == LOOKUP and decision.threshold == 0.8
    assert run_paused(paused=None).outcome is GateOutcome.execute


def test_a_pause_leaves_every_other_reason_as_it_was() -> None:
    """Checked last: a step that would not have run keeps its reason, so the evidence keeps its
    meaning (an exploration step stays the monitor's random sample of what would run)."""
    assert run_paused(critic_score=0.5).reason is DeferralReason.below_threshold
    assert run_paused(holdout=True).reason is DeferralReason.exploration
    assert run_paused(stage=Stage.copilot).reason is DeferralReason.copilot_stage
    assert run_paused(stage=Stage.logging).outcome is GateOutcome.record
    assert run_paused(certificate=certificate(judged=10)).reason is DeferralReason.novel_situation


@given(
    score=st.floats(0.0, 1.0),
    stage=st.sampled_from(list(Stage)),
    steps=st.integers(0, 10),
    cluster=st.sampled_from(["retail", "vip", "other"]),
    holdout=st.booleans(),
    action=st.sampled_from([LOOKUP, INVOICE, REFUND, None]),
)
def test_a_paused_scope_never_executes(
    score: float, stage: Stage, steps: int, cluster: str, holdout: bool, action: Action | None
) -> None:
    proposal = (
        None if action is None else Proposal(candidates=[Candidate(action=action, probability=0.9)], policy_version="p")
    )
    decision = run_paused(
        critic_score=score,
        stage=stage,
        business_cluster=cluster,
        holdout=holdout,
        proposal=proposal,
        thresholds=ALL,
        progress=SessionProgress(autonomous_steps=steps),
    )
    assert decision.outcome is not GateOutcome.execute
