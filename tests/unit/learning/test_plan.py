"""The learning plan on hand-made evidence, and its publication, without Kafka.

The policy-confidence critic (``learning.critic = confidence``) keeps these fast and exact: an
example's score is the probability its signals carry.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from selective_autonomy.config import LearningSettings
from selective_autonomy.controls import hand
from selective_autonomy.controls.hand import HandChange
from selective_autonomy.inference.artefact import ArtefactMeta
from selective_autonomy.inference.protocol import PolicyConfidenceCritic, PolicySignals, Proposal
from selective_autonomy.inference.registry import ModelRegistry, PointerChanged, ProcessModels, ServicePointer
from selective_autonomy.learning.apply import apply_plan
from selective_autonomy.learning.evidence import CriticExample, EvidenceSource, MonitorOutcome, PolicyExample
from selective_autonomy.learning.loop import LearningLoop
from selective_autonomy.learning.plan import plan_learning
from selective_autonomy.learning.plan_records import LearningInput, LearningPlan
from selective_autonomy.learning.splits import split_evidence
from selective_autonomy.schemas.event_parts import Action, ActionTier, Stage, Verdict
from selective_autonomy.schemas.events import UIStateChanged
from selective_autonomy.store.models import ModelKind
from selective_autonomy.store.repository import FeedbackStore
from tests.factories import BILLING as SCHEMA
from tests.factories import T0, event
from tests.support.models import FixedPolicy

CONFIG = LearningSettings(critic="confidence", min_calibration_samples=100, exploration_share=0.05)
LOOKUP = Action(action_type="lookup_order", arguments={"order_id": "A1"})
INVOICE = Action(action_type="send_invoice")


def example(
    i: int,
    action: Action,
    probability: float,
    accepted: bool,
    *,
    source: EvidenceSource = EvidenceSource.exploration,
    cluster: str = "retail",
    minutes: float | None = None,
) -> CriticExample:
    spec = SCHEMA.action(action.action_type)
    assert spec is not None
    return CriticExample(
        feedback_id=f"fb-{cluster}-{i}",
        event=event(session=f"s{i}", version=i % 5, cluster=cluster),
        action=action,
        tier=spec.tier,
        signals=PolicySignals(top1_probability=probability, probability=probability),
        policy_probability=probability,
        policy_version=FixedPolicy.version,
        process_id="billing",
        business_cluster=cluster,
        step_index=i % 5,
        verdict=Verdict.accepted if accepted else Verdict.corrected,
        label=accepted,
        operator_action=None if accepted else Action(action_type="send_invoice"),
        source=source,
        given_at=T0 + timedelta(minutes=i if minutes is None else minutes),
        received_at=T0 + timedelta(minutes=i if minutes is None else minutes),
    )


def copilot_evidence(n: int = 1500, seed: int = 0, start: int = 0, cluster: str = "retail") -> list[CriticExample]:
    """lookup_order: accepted with probability = the policy's confidence; send_invoice: 50/50."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(start, start + n):
        if i % 4:
            p = float(rng.uniform(0.5, 1.0))
            out.append(example(i, LOOKUP, p, bool(rng.random() < p), cluster=cluster))
        else:
            out.append(example(i, INVOICE, 0.9, bool(rng.random() < 0.5), cluster=cluster))
    return out


def inputs(
    pointer: ServicePointer, examples: list[CriticExample], outcomes: list[MonitorOutcome] = ()
) -> LearningInput:  # type: ignore[assignment]
    models = ProcessModels(SCHEMA, FixedPolicy([(LOOKUP, 0.9)]), PolicyConfidenceCritic(), pointer)
    return LearningInput(schema=SCHEMA, pointer=pointer, models=models, examples=examples, outcomes=outcomes)


COPILOT = ServicePointer(policy="policy/fixed-1", default_stage=Stage.copilot)


def test_copilot_evidence_certifies_per_action_type_and_promotes() -> None:
    plan = plan_learning(inputs(COPILOT, copilot_evidence()), CONFIG)
    pointer = plan.pointer
    assert pointer.stage("retail") is Stage.selective and plan.decisions["retail"].stage is Stage.selective
    certificate = pointer.certificates["retail"]
    assert set(certificate.keys) == {"billing/retail/auto/lookup_order"}  # the 50/50 action never certifies
    threshold = pointer.thresholds.get("billing", "retail", ActionTier.auto, "lookup_order")
    assert threshold is not None and threshold >= 0.8  # P(accept) = score: precision >= 0.9 needs t >= 0.8
    assert pointer.thresholds.get("billing", "retail", ActionTier.critical, "send_invoice") is None
    assert pointer.selective_since["retail"] == certificate.issued_at
    assert pointer.exploration_share == 0.05
    assert certificate.judged_actions == {"lookup_order": 375 * 3, "send_invoice": 375}
    # Nothing was chosen or fitted on the evidence (one untrained candidate): all of it certified.
    assert plan.calibration is not None and sum(r.samples for r in plan.calibration.results) == 1500
    # No evidence for the other cluster: it stays where it was.
    assert pointer.stage("vip") is Stage.copilot


def test_deferred_examples_never_certify() -> None:
    deferred = [e.model_copy(update={"source": EvidenceSource.deferred}) for e in copilot_evidence()]
    plan = plan_learning(inputs(COPILOT, deferred), CONFIG)
    assert plan.calibration is None and "retail" not in plan.pointer.certificates
    assert plan.pointer.stage("retail") is Stage.copilot


def outcomes(n: int, accepted_share: float, start_minutes: float, seed: int = 1) -> list[MonitorOutcome]:
    rng = np.random.default_rng(seed)
    return [
        MonitorOutcome(
            feedback_id=f"audit-{start_minutes}-{i}",
            process_id="billing",
            business_cluster="retail",
            accepted=bool(rng.random() < accepted_share),
            inclusion_probability=0.04,
            given_at=T0 + timedelta(minutes=start_minutes + i),
            received_at=T0 + timedelta(minutes=start_minutes + i),
            audit=True,
        )
        for i in range(n)
    ]


def test_the_monitor_demotes_on_a_synthetic_drift_and_evidence_restarts_there() -> None:
    promoted = plan_learning(inputs(COPILOT, copilot_evidence()), CONFIG).pointer
    since = promoted.selective_since["retail"]
    minutes_after = (since - T0).total_seconds() / 60
    healthy = outcomes(200, 0.97, minutes_after + 1)
    quiet = plan_learning(inputs(promoted, [], healthy), CONFIG, retrain=False)
    assert not quiet.monitor["retail"].alarm
    assert quiet.pointer.stages == promoted.stages and quiet.pointer.certificates == promoted.certificates
    # A new situation: most of what runs is now wrong. A handful of audits is enough.
    drift = outcomes(20, 0.1, minutes_after + 300)
    alarmed = plan_learning(inputs(promoted, [], healthy + drift), CONFIG, retrain=False)
    reading = alarmed.monitor["retail"]
    assert reading.alarm and reading.outcomes - len(healthy) <= 6
    pointer = alarmed.pointer
    assert pointer.stage("retail") is Stage.copilot and "precision monitor" in alarmed.decisions["retail"].reason
    assert "retail" not in pointer.certificates and not pointer.thresholds.for_cluster("billing", "retail")
    assert pointer.evidence_since["retail"] == (healthy + drift)[reading.alarm_at or 0].given_at
    assert "retail" not in pointer.selective_since

    # Retraining on the old evidence certifies nothing for the cluster: only what came after counts.
    stale = plan_learning(inputs(pointer, copilot_evidence()), CONFIG)
    assert stale.pointer.stage("retail") is Stage.copilot and "retail" not in stale.pointer.certificates
    # Fresh copilot evidence after the alarm earns a new certificate and promotes again.
    fresh = copilot_evidence(1500, seed=3, start=int(minutes_after) + 400)
    recovered = plan_learning(inputs(pointer, copilot_evidence() + fresh), CONFIG)
    assert recovered.pointer.stage("retail") is Stage.selective
    assert recovered.pointer.certificates["retail"].evidence_from >= pointer.evidence_since["retail"]  # type: ignore[operator]


def test_splits_keep_the_certifying_evidence_out_of_training_and_selection() -> None:
    examples = copilot_evidence(1000) + [
        e.model_copy(update={"source": EvidenceSource.deferred, "feedback_id": f"d-{e.feedback_id}"})
        for e in copilot_evidence(500, seed=2, start=1000)
    ]
    splits = split_evidence(examples, LearningSettings())
    certify, select, train = ({e.feedback_id for e in part} for part in (splits.certify, splits.select, splits.train))
    assert not (certify & select) and not (certify & train) and not (select & train)
    assert len(certify) == 300 and len(select) == 200  # shares of the 1,000 unbiased examples
    assert all(e.source is EvidenceSource.exploration for e in (*splits.certify, *splits.select))
    assert max(e.given_at for e in splits.select) <= min(e.given_at for e in splits.certify)
    assert sum(e.source is EvidenceSource.deferred for e in splits.train) == 500  # deferrals only train


def test_apply_publishes_the_pointer_and_writes_stage_changes_from_it(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "models")
    registry.save_schema(SCHEMA)
    registry.publish("billing", COPILOT)
    emitted = []
    with FeedbackStore.open(f"sqlite:///{tmp_path / 'store.db'}") as store:
        plan = plan_learning(inputs(registry.pointer("billing"), copilot_evidence()), CONFIG)
        report = apply_plan(plan, registry, store, emitted.extend)
        assert registry.pointer("billing").stage("retail") is Stage.selective
        assert report.pointer_revision == registry.pointer("billing").revision == 2
        [change] = report.stage_changes
        assert (change.business_cluster, change.from_stage, change.to_stage) == (
            "retail",
            Stage.copilot,
            Stage.selective,
        )
        assert emitted == [change]
        assert store.latest_stage("billing", "retail") is Stage.selective
        # A plan that changes nothing publishes nothing: no worker reloads for a quiet monitor run.
        quiet = plan_learning(inputs(registry.pointer("billing"), []), CONFIG, retrain=False)
        assert apply_plan(quiet, registry, store).pointer_revision == 2


def test_a_certificate_is_void_once_the_critic_it_was_earned_with_is_replaced() -> None:
    promoted = plan_learning(inputs(COPILOT, copilot_evidence()), CONFIG).pointer
    # As if an embedded critic had earned it: the next run chooses the policy's confidence instead,
    # and the cluster has no evidence to recertify with.
    with_critic = promoted.model_copy(update={"critic": "critic/earlier"})
    plan = plan_learning(inputs(with_critic, copilot_evidence(cluster="vip")), CONFIG)
    assert plan.pointer.critic is None
    assert "retail" not in plan.pointer.certificates and not plan.pointer.thresholds.for_cluster("billing", "retail")
    assert plan.pointer.stage("retail") is Stage.copilot
    assert any("void" in note for note in plan.notes)


def test_a_current_certificate_is_not_reissued_until_enough_new_unbiased_evidence_arrived() -> None:
    evidence = copilot_evidence()
    promoted = plan_learning(inputs(COPILOT, evidence), CONFIG).pointer
    few = copilot_evidence(100, seed=5, start=2000)
    kept = plan_learning(inputs(promoted, evidence + few), CONFIG)
    assert kept.calibration is None and kept.pointer == promoted
    assert any("current" in note for note in kept.notes)
    many = copilot_evidence(CONFIG.recertify_after, seed=6, start=2000)
    renewed = plan_learning(inputs(promoted, evidence + many), CONFIG)
    assert renewed.calibration is not None
    assert renewed.pointer.certificates["retail"].received_to > promoted.certificates["retail"].received_to  # type: ignore[operator]


class LearningPolicy(FixedPolicy):
    """Proposes lookup_order; an update remembers the endorsed actions it was trained on."""

    def __init__(self, version: str = "fixed-1", trained: Sequence[PolicyExample] = ()) -> None:
        super().__init__([(LOOKUP, 0.9)])
        self.version = version
        self.trained = list(trained)
        self.meta = ArtefactMeta(kind="policy-test", version=version, process_id="billing", schema_hash="test")

    def propose(self, events: Sequence[UIStateChanged], top_k: int = 5) -> list[Proposal]:
        return [Proposal(candidates=self.candidates[:top_k], policy_version=self.version) for _ in events]

    def updated_with(self, examples: Sequence[PolicyExample]) -> LearningPolicy:
        return LearningPolicy("fixed-2", examples)


def endorsed(examples: Sequence[CriticExample]) -> list[PolicyExample]:
    return [
        PolicyExample(
            feedback_id=e.feedback_id,
            event=e.event,
            action=e.action if e.label else (e.operator_action or e.action),
            verdict=e.verdict,
            process_id=e.process_id,
            business_cluster=e.business_cluster,
            step_index=e.step_index,
            source=e.source,
            given_at=e.given_at,
        )
        for e in examples
    ]


def test_a_policy_update_never_learns_from_and_is_never_certified_on_the_certifying_answers() -> None:
    """A policy fitted to its calibration steps looks better there than it is: the update learns
    and is chosen only on answers before the certifying split, and certifies only after them."""
    evidence = copilot_evidence()
    config = CONFIG.model_copy(update={"policy_update_examples": 100})
    policy = LearningPolicy()
    models = ProcessModels(SCHEMA, policy, PolicyConfidenceCritic(), COPILOT)
    plan = plan_learning(LearningInput(SCHEMA, COPILOT, models, evidence, policy_examples=endorsed(evidence)), config)
    (artefact,) = [a for a in plan.artefacts if a.kind is ModelKind.policy]
    certify_from = min(e.given_at for e in split_evidence(evidence, config).certify)
    assert artefact.model.trained and max(e.given_at for e in artefact.model.trained) < certify_from
    seen_to = artefact.meta.evaluated_to
    assert seen_to is not None and seen_to < certify_from
    assert plan.calibration is not None
    assert sum(r.samples for r in plan.calibration.results) == sum(e.given_at > seen_to for e in evidence)

    # A policy in service that saw answers (an earlier run's update): they never certify it.
    seen = evidence[1200].given_at
    experienced = LearningPolicy("fixed-2")
    experienced.meta = experienced.meta.model_copy(update={"evaluated_to": seen})
    models = ProcessModels(SCHEMA, experienced, PolicyConfidenceCritic(), COPILOT)
    later = plan_learning(LearningInput(SCHEMA, COPILOT, models, evidence), config)
    assert later.calibration is not None
    assert sum(r.samples for r in later.calibration.results) == sum(e.given_at > seen for e in evidence)
    assert any("policy fixed-2 saw them" in note for note in later.notes)


def test_judged_steps_below_target_raise_the_certified_thresholds_and_a_new_certificate_resets_them() -> None:
    promoted = plan_learning(inputs(COPILOT, copilot_evidence()), CONFIG).pointer
    key = "billing/retail/auto/lookup_order"
    certified = promoted.certificates["retail"].keys[key].threshold
    minutes_after = (promoted.selective_since["retail"] - T0).total_seconds() / 60
    # A slow drift: one in seven rejected (86%) under a 90% target, too little for the monitor to prove.
    drifting = [
        o.model_copy(update={"accepted": i % 7 != 6}) for i, o in enumerate(outcomes(60, 1.0, minutes_after + 1))
    ]
    watched = plan_learning(inputs(promoted, [], drifting), CONFIG, retrain=False)
    assert not watched.monitor["retail"].alarm and watched.pointer.stage("retail") is Stage.selective
    lift = watched.lifts["retail"]
    rejected = sum(not o.accepted for o in drifting)
    assert lift > 0 and watched.pointer.threshold_lift == {"retail": lift}
    # Never less than the deterministic bound: step * sum(target - y) over the judged steps.
    assert lift >= CONFIG.threshold_step * (0.9 * len(drifting) - (len(drifting) - rejected)) - 1e-12
    assert watched.pointer.thresholds.values[key] == certified + lift
    assert watched.pointer.certificates == promoted.certificates  # the certificate itself is unchanged
    assert any("above the certified ones after 60 judged" in note for note in watched.notes)

    # Steps at the target bring the lift back down, never below the certificate.
    healthy = outcomes(400, 1.0, minutes_after + 100)
    recovered = plan_learning(inputs(promoted, [], drifting + healthy), CONFIG, retrain=False)
    assert "retail" not in recovered.lifts and recovered.pointer.thresholds.values[key] == certified

    # A new certificate starts from its own thresholds: judged steps before it no longer count.
    fresh = copilot_evidence(600, seed=5, start=int(minutes_after) + 600)
    renewed = plan_learning(inputs(watched.pointer, copilot_evidence() + fresh, drifting), CONFIG)
    certificate = renewed.pointer.certificates["retail"]
    assert certificate.received_to is not None and certificate.received_to > drifting[-1].received_at
    assert "retail" not in renewed.lifts
    assert renewed.pointer.thresholds.values[key] == certificate.keys[key].threshold


def test_no_lift_with_a_zero_step() -> None:
    config = CONFIG.model_copy(update={"threshold_step": 0.0})
    promoted = plan_learning(inputs(COPILOT, copilot_evidence()), config).pointer
    minutes_after = (promoted.selective_since["retail"] - T0).total_seconds() / 60
    watched = plan_learning(inputs(promoted, [], outcomes(60, 0.85, minutes_after + 1)), config, retrain=False)
    assert watched.pointer == promoted and not watched.lifts


# -- hand controls win over the loop ----------------------------------------------------------------


def by_hand(pointer: ServicePointer, stage: Stage, cluster: str = "retail") -> ServicePointer:
    return hand.set_stage(pointer, cluster, stage, HandChange(process_id="billing", reason="incident", by="alice"), T0)


def paused(pointer: ServicePointer, scope: str = "retail") -> ServicePointer:
    return hand.pause(pointer, scope, HandChange(process_id="billing", reason="audit", by="bob"), T0)


def test_a_cluster_demoted_by_hand_is_never_promoted_again_by_the_loop() -> None:
    promoted = plan_learning(inputs(COPILOT, copilot_evidence()), CONFIG).pointer
    demoted = by_hand(promoted, Stage.copilot)
    fresh = copilot_evidence(CONFIG.recertify_after + 500, seed=7, start=2000)
    plan = plan_learning(inputs(demoted, copilot_evidence() + fresh), CONFIG)
    assert plan.pointer.stage("retail") is Stage.copilot and "retail" not in plan.decisions
    assert plan.held["retail"].stage is Stage.selective
    assert any(n.startswith("retail: would move copilot -> selective") and "alice" in n for n in plan.notes)
    assert plan.pointer.manual == demoted.manual  # the marker stays until a person changes it
    # It still recertifies: released, the next run promotes at once.
    assert "retail" in plan.pointer.certificates
    released = plan_learning(inputs(hand.release(plan.pointer, "retail"), []), CONFIG, retrain=False)
    assert released.pointer.stage("retail") is Stage.selective and not released.held


def test_a_paused_cluster_or_process_is_never_promoted_but_still_certified() -> None:
    for scope, kept in (("retail", {"retail"}), ("*", {"retail", "vip"})):
        pointer = paused(COPILOT, scope)
        evidence = copilot_evidence() + copilot_evidence(cluster="vip")
        plan = plan_learning(inputs(pointer, evidence), CONFIG)
        assert {c for c in ("retail", "vip") if plan.pointer.stage(c) is Stage.copilot} == kept
        assert set(plan.held) == kept and set(plan.pointer.certificates) == {"retail", "vip"}
        assert plan.pointer.paused == pointer.paused
        assert all(any(n.startswith(f"{c}: would move copilot -> selective") for n in plan.notes) for c in kept)


def test_a_pause_never_holds_a_demotion() -> None:
    promoted = plan_learning(inputs(COPILOT, copilot_evidence()), CONFIG).pointer
    minutes_after = (promoted.selective_since["retail"] - T0).total_seconds() / 60
    drift = outcomes(40, 0.1, minutes_after + 1)
    alarmed = plan_learning(inputs(paused(promoted), [], drift), CONFIG, retrain=False)
    assert alarmed.pointer.stage("retail") is Stage.copilot and not alarmed.held


def test_a_stage_held_in_selective_by_hand_stays_but_an_alarm_voids_its_certificate() -> None:
    promoted = plan_learning(inputs(COPILOT, copilot_evidence()), CONFIG).pointer
    held = by_hand(promoted, Stage.selective)
    assert held.selective_since == promoted.selective_since  # it was selective already
    minutes_after = (promoted.selective_since["retail"] - T0).total_seconds() / 60
    drift = outcomes(40, 0.1, minutes_after + 1)
    alarmed = plan_learning(inputs(held, [], drift), CONFIG, retrain=False)
    pointer = alarmed.pointer
    assert pointer.stage("retail") is Stage.selective and not alarmed.decisions
    assert alarmed.held["retail"].stage is Stage.copilot
    # Nothing runs unattended there until a new certificate: no thresholds, no monitor clock.
    assert "retail" not in pointer.certificates and not pointer.thresholds.for_cluster("billing", "retail")
    assert "retail" not in pointer.selective_since and "retail" in pointer.evidence_since
    # Fresh evidence after the alarm certifies it again, in place, and the monitor watches from there.
    fresh = copilot_evidence(1500, seed=3, start=int(minutes_after) + 400)
    recertified = plan_learning(inputs(pointer, fresh), CONFIG).pointer
    assert recertified.stage("retail") is Stage.selective and "retail" in recertified.certificates
    assert recertified.selective_since["retail"] == max(e.received_at for e in fresh)


def test_apply_refuses_a_plan_made_on_a_pointer_that_changed_and_publish_keeps_hand_controls(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "models")
    registry.save_schema(SCHEMA)
    registry.publish("billing", COPILOT)
    plan = plan_learning(inputs(registry.pointer("billing"), copilot_evidence()), CONFIG)
    # A person pauses retail while the loop plans: the plan would promote it.
    registry.update("billing", lambda p: paused(p))
    with FeedbackStore.open(f"sqlite:///{tmp_path / 'store.db'}") as store, pytest.raises(PointerChanged):
        apply_plan(plan, registry, store)
    assert registry.pointer("billing").stage("retail") is Stage.copilot
    # Any other publisher keeps the pauses and the stages set by hand in force.
    registry.update("billing", lambda p: by_hand(p, Stage.logging, "vip"))
    registry.publish("billing", COPILOT.model_copy(update={"stages": {"vip": Stage.selective}}))
    kept = registry.pointer("billing")
    assert set(kept.paused) == {"retail"} and kept.stage("vip") is Stage.logging and "vip" in kept.manual


def test_the_loop_plans_again_when_a_person_changed_the_pointer_while_it_planned(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "models")
    registry.save_schema(SCHEMA)
    registry.publish("billing", ServicePointer(policy="policy/fixed-1"))  # logging: the loop promotes to copilot

    class Interrupted(LearningLoop):
        plans = 0

        def plan(self, process_id: str, *, retrain: bool = True) -> tuple[LearningInput, LearningPlan]:
            planned = super().plan(process_id, retrain=retrain)
            Interrupted.plans += 1
            if Interrupted.plans == 1:  # a person pauses retail after the loop read the pointer
                registry.update("billing", lambda p: paused(p))
            return planned

    with FeedbackStore.open(f"sqlite:///{tmp_path / 'store.db'}") as store:
        report = Interrupted(registry, store, CONFIG).run("billing", retrain=False)
    assert Interrupted.plans == 2
    pointer = registry.pointer("billing")
    assert pointer.stage("retail") is Stage.logging and pointer.stage("vip") is Stage.copilot
    assert set(pointer.paused) == {"retail"}
    assert [c.business_cluster for c in report.stage_changes] == ["vip"]
    assert any(note.startswith("retail: would move logging -> copilot") for note in report.notes)


# -- confirmed promotion: the loop proposes, a supervisor confirms -----------------------------------

CONFIRMED = CONFIG.model_copy(update={"promotion": "confirmed"})
PLANNED = T0 + timedelta(days=3)


def proposing(
    pointer: ServicePointer, examples: list[CriticExample], judged: list[MonitorOutcome] | None = None
) -> LearningInput:
    """The plan's input, planned at ``PLANNED`` (the time a promotion is proposed)."""
    return dataclasses.replace(inputs(pointer, examples, judged or []), planned_at=PLANNED)


def test_confirmed_mode_proposes_the_promotion_and_keeps_the_cluster_in_copilot() -> None:
    evidence = copilot_evidence()
    plan = plan_learning(proposing(COPILOT, evidence), CONFIRMED)
    pointer = plan.pointer
    assert pointer.stage("retail") is Stage.copilot and not plan.decisions and "retail" not in plan.held
    assert "retail" not in pointer.selective_since and not pointer.threshold_lift
    pending = pointer.pending_promotion("retail")
    assert pending is not None and set(pointer.pending_promotions) == {"retail"}
    # It rests on the certificate the run earned, which is in force, thresholds included.
    assert pending.certificate == pointer.certificates["retail"]
    assert pointer.thresholds.for_cluster("billing", "retail") == {
        k: key.threshold for k, key in pending.certificate.keys.items()
    }
    assert plan.calibration is not None
    assert pending.certified_coverage == plan.calibration.certified_coverage("billing/retail/")
    assert pending.proposed_at == PLANNED and pending.watch_from == max(e.received_at for e in evidence)
    assert pending.reason == plan.proposed["retail"].reason and pending.reason.startswith("certified thresholds")
    assert any(n.startswith("retail: promotion copilot -> selective proposed for a supervisor") for n in plan.notes)
    # What an automatic promotion would have done with the same evidence.
    automatic = plan_learning(inputs(COPILOT, evidence), CONFIG).pointer
    assert automatic.certificates == pointer.certificates and automatic.stage("retail") is Stage.selective
    assert automatic.selective_since["retail"] == pending.watch_from and automatic.pending_promotions == {}

    # A run that changes nothing keeps the proposal as it was: nothing to publish, no worker reloads.
    later = dataclasses.replace(proposing(pointer, []), planned_at=PLANNED + timedelta(hours=1))
    quiet = plan_learning(later, CONFIRMED, retrain=False)
    assert quiet.pointer == pointer and quiet.proposed.keys() == {"retail"}
    assert any("still waiting for a supervisor" in n for n in quiet.notes)


def test_a_pending_promotion_is_void_once_its_certificate_is_replaced_and_proposed_again_if_due() -> None:
    proposed = plan_learning(proposing(COPILOT, copilot_evidence()), CONFIRMED).pointer
    first = proposed.pending_promotions["retail"]
    # Recertified on newer evidence: a new certificate, a new proposal resting on it.
    fresh = copilot_evidence(600, seed=5, start=2000)
    renewed = dataclasses.replace(proposing(proposed, copilot_evidence() + fresh), planned_at=PLANNED + timedelta(1))
    again = plan_learning(renewed, CONFIRMED).pointer
    second = again.pending_promotions["retail"]
    assert second.certificate == again.certificates["retail"] != first.certificate
    assert second.proposed_at == PLANNED + timedelta(1)
    # The models it was earned with replaced, and no evidence to recertify: no certificate, no proposal.
    with_critic = proposed.model_copy(update={"critic": "critic/earlier"})
    void = plan_learning(proposing(with_critic, copilot_evidence(cluster="vip")), CONFIRMED)
    assert "retail" not in void.pointer.certificates and "retail" not in void.pointer.pending_promotions
    assert void.pointer.stage("retail") is Stage.copilot and void.pointer.pending_promotion("vip") is not None
    # Recertification that certifies nothing (operators stopped agreeing): void too.
    wrong = [e.model_copy(update={"label": False, "verdict": Verdict.corrected}) for e in fresh]
    failed = plan_learning(proposing(proposed, wrong), CONFIRMED).pointer
    assert "retail" not in failed.certificates and failed.pending_promotions == {}
    # A publisher that voids certificates without knowing about proposals (a deploy) leaves a
    # stale entry that can no longer be confirmed.
    deployed = proposed.model_copy(update={"certificates": {}})
    assert deployed.pending_promotion("retail") is None


def test_confirmed_mode_keeps_demotions_and_logging_to_copilot_automatic() -> None:
    logging = ServicePointer(policy="policy/fixed-1")
    started = plan_learning(proposing(logging, []), CONFIRMED, retrain=False)
    assert {c: started.pointer.stage(c) for c in ("retail", "vip")} == {"retail": Stage.copilot, "vip": Stage.copilot}
    assert started.pointer.pending_promotions == {}
    # A selective cluster (confirmed earlier) is demoted on an alarm without asking anyone.
    promoted = plan_learning(inputs(COPILOT, copilot_evidence()), CONFIG).pointer
    minutes_after = (promoted.selective_since["retail"] - T0).total_seconds() / 60
    alarmed = plan_learning(proposing(promoted, [], outcomes(40, 0.1, minutes_after + 1)), CONFIRMED, retrain=False)
    assert alarmed.pointer.stage("retail") is Stage.copilot and alarmed.decisions["retail"].stage is Stage.copilot
    assert alarmed.pointer.pending_promotions == {}


def test_automatic_mode_promotes_and_drops_a_proposal_left_from_confirmed_mode() -> None:
    proposed = plan_learning(proposing(COPILOT, copilot_evidence()), CONFIRMED).pointer
    plan = plan_learning(inputs(proposed, []), CONFIG, retrain=False)
    assert plan.pointer.stage("retail") is Stage.selective and plan.decisions["retail"].stage is Stage.selective
    assert plan.pointer.pending_promotions == {} and not plan.proposed


def test_confirmed_mode_proposes_for_a_paused_cluster_but_not_for_one_held_by_hand() -> None:
    evidence = copilot_evidence() + copilot_evidence(cluster="vip")
    pointer = by_hand(paused(COPILOT, "retail"), Stage.copilot, "vip")
    plan = plan_learning(proposing(pointer, evidence), CONFIRMED)
    # The pause forbids the confirmation, not the proposal; a stage set by hand only a person moves.
    assert set(plan.pointer.pending_promotions) == {"retail"} and set(plan.held) == {"retail", "vip"}
    assert not plan.proposed and not plan.decisions
    assert {plan.pointer.stage(c) for c in ("retail", "vip")} == {Stage.copilot}
    # Setting the stage by hand drops a proposal of that cluster.
    assert "retail" not in by_hand(plan.pointer, Stage.copilot).pending_promotions


def test_a_confirmed_promotion_runs_on_the_proposed_certificate_and_the_loop_watches_it(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "models")
    registry.save_schema(SCHEMA)
    registry.publish("billing", COPILOT)
    with FeedbackStore.open(f"sqlite:///{tmp_path / 'store.db'}") as store:
        emitted: list = []
        plan = plan_learning(proposing(registry.pointer("billing"), copilot_evidence()), CONFIRMED)
        report = apply_plan(plan, registry, store, emitted.extend)
        assert report.stage_changes == [] and emitted == [] and report.proposed.keys() == {"retail"}
        assert store.stage_history("billing", "retail") == []
        pointer = registry.pointer("billing")
        pending = pointer.pending_promotions["retail"]
        # The thresholds lifted meanwhile by a stale write are put back to the certified ones.
        key = "billing/retail/auto/lookup_order"
        drifted = pointer.model_copy(
            update={"thresholds": pointer.thresholds.model_copy(update={"values": {key: 0.99}})}
        )
        confirmed, used = hand.confirm(drifted, "billing", "retail")
        assert used == pending and confirmed.stage("retail") is Stage.selective
        assert confirmed.thresholds.values == {k: c.threshold for k, c in pending.certificate.keys.items()}
        assert confirmed.selective_since["retail"] == pending.watch_from
        assert confirmed.pending_promotions == {} and confirmed.manual == {}
        # The next run leaves it selective on its certificate and proposes nothing.
        after = plan_learning(proposing(confirmed, []), CONFIRMED, retrain=False)
        assert after.pointer == confirmed and not after.proposed
