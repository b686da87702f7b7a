"""What a hand change does to the service pointer: certificates, thresholds and stages."""

from __future__ import annotations

from datetime import timedelta

from selective_autonomy.inference.registry import WHOLE_PROCESS, HandStage, Pause, ServicePointer
from selective_autonomy.inference.thresholds import Thresholds
from selective_autonomy.onboarding.rules import change_models, reset_for_schema
from selective_autonomy.schemas.event_parts import Stage
from selective_autonomy.schemas.process import BusinessCluster
from tests.factories import BILLING_MINIMAL as SCHEMA
from tests.factories import CASES_T0 as T0
from tests.unit.onboarding.support import CERTIFICATE

SELECTIVE = ServicePointer(
    policy="policy/p1",
    critic="critic/c1",
    thresholds=Thresholds(values={"billing/retail/auto/lookup_order": 0.8}, version="t1"),
    stages={"retail": Stage.selective, "vip": Stage.copilot},
    certificates={"retail": CERTIFICATE},
    selective_since={"retail": T0},
    evidence_since={"vip": T0 - timedelta(days=1)},
    exploration_share=0.05,
    revision=7,
)


def test_new_models_void_every_certificate_and_threshold_and_end_selective() -> None:
    change = change_models(SELECTIVE, SCHEMA, "policy/p2", "critic/c1", "policy p2 deployed by ada")
    pointer = change.pointer
    assert (pointer.policy, pointer.critic) == ("policy/p2", "critic/c1")
    assert pointer.certificates == {} and pointer.thresholds.values == {} and pointer.selective_since == {}
    assert pointer.stage("retail") is Stage.copilot and pointer.stage("vip") is Stage.copilot
    # What the change does not concern stays: the evidence window an alarm set, the exploration share.
    assert pointer.evidence_since == SELECTIVE.evidence_since and pointer.exploration_share == 0.05
    [moved] = change.stage_changes
    assert (moved.business_cluster, moved.from_stage, moved.to_stage) == ("retail", Stage.selective, Stage.copilot)
    assert moved.reason.startswith("policy p2 deployed by ada: the certificate was for the models replaced")
    assert change.voided == [
        "certificate of retail (policy p1, critic c1, coverage 40.0%)",
        "1 threshold(s) of version t1",
    ]


def test_a_new_critic_alone_voids_them_too() -> None:
    change = change_models(SELECTIVE, SCHEMA, "policy/p1", None, "back to policy confidence")
    assert change.pointer.critic is None and change.pointer.certificates == {}
    assert change.pointer.stage("retail") is Stage.copilot


def test_the_same_models_change_nothing() -> None:
    change = change_models(SELECTIVE, SCHEMA, "policy/p1", "critic/c1", "again")
    assert change.pointer == SELECTIVE and change.stage_changes == [] and change.voided == []


def test_a_first_policy_moves_logging_clusters_to_copilot() -> None:
    change = change_models(ServicePointer(revision=1), SCHEMA, "policy/p1", None, "policy p1 deployed by ada")
    assert [(c.business_cluster, c.from_stage, c.to_stage) for c in change.stage_changes] == [
        ("retail", Stage.logging, Stage.copilot),
        ("vip", Stage.logging, Stage.copilot),
    ]
    assert (
        change.stage_changes[0].reason
        == "a policy is in service: suggest and collect feedback (policy p1 deployed by ada)"
    )
    assert change.pointer.stage("retail") is Stage.copilot and change.voided == []


def test_a_new_schema_voids_models_certificates_and_stages() -> None:
    new = SCHEMA.model_copy(update={"version": 2, "business_clusters": [BusinessCluster(id="retail")]})
    change = reset_for_schema(SELECTIVE, SCHEMA, new, "schema replaced by ada")
    pointer = change.pointer
    assert (pointer.policy, pointer.critic, pointer.certificates, pointer.thresholds.values) == (None, None, {}, {})
    assert pointer.stage("retail") is Stage.logging and pointer.evidence_since == {}
    assert pointer.exploration_share == 0.05 and pointer.revision == SELECTIVE.revision
    assert [(c.business_cluster, c.from_stage) for c in change.stage_changes] == [("retail", Stage.selective)]
    assert change.voided[:2] == [f"policy p1 (built for schema {SCHEMA.schema_hash()})", "critic c1"]
    assert change.voided[-1] == "clusters no longer in the schema: vip"


PAUSE = Pause(reason="incident 4711", by="alice", at=T0)
HELD_SELECTIVE = HandStage(stage=Stage.selective, reason="known good", by="bob", at=T0)
HELD_LOGGING = HandStage(stage=Stage.logging, reason="not yet", by="bob", at=T0)


def test_new_models_clear_the_lift_over_the_voided_thresholds() -> None:
    lifted = SELECTIVE.model_copy(update={"threshold_lift": {"retail": 0.02}})
    assert change_models(lifted, SCHEMA, "policy/p2", "critic/c1", "deployed").pointer.threshold_lift == {}
    new = SCHEMA.model_copy(update={"version": 2})
    assert reset_for_schema(lifted, SCHEMA, new, "replaced").pointer.threshold_lift == {}


def test_a_paused_process_keeps_its_pause_and_no_cluster_is_promoted_by_a_first_policy() -> None:
    paused = ServicePointer(paused={WHOLE_PROCESS: PAUSE}, revision=1)
    change = change_models(paused, SCHEMA, "policy/p1", None, "policy p1 deployed by ada")
    assert change.pointer.paused == paused.paused and change.pointer.policy == "policy/p1"
    assert change.stage_changes == [] and change.pointer.stage("retail") is Stage.logging
    assert (
        change.held[0] == "retail: would move logging -> copilot; held: the process is paused by alice (incident 4711)"
    )


def test_a_paused_selective_cluster_is_still_demoted() -> None:
    paused = SELECTIVE.model_copy(update={"paused": {"retail": PAUSE}})
    change = change_models(paused, SCHEMA, "policy/p2", "critic/c1", "deployed")
    assert change.pointer.stage("retail") is Stage.copilot and change.held == []
    assert change.pointer.paused == {"retail": PAUSE}


def test_a_stage_set_by_hand_stays_and_a_held_selective_cluster_runs_nothing_until_recertified() -> None:
    held = SELECTIVE.model_copy(
        update={
            "manual": {"retail": HELD_SELECTIVE},
            "threshold_lift": {"retail": 0.01},
        }
    )
    change = change_models(held, SCHEMA, "policy/p2", "critic/c1", "policy p2 deployed by ada")
    pointer = change.pointer
    assert pointer.stage("retail") is Stage.selective and pointer.manual == held.manual
    # What it ran on is void: no certificate, no threshold, no lift, no monitor window.
    assert (pointer.certificates, pointer.thresholds.values, pointer.threshold_lift, pointer.selective_since) == (
        {},
        {},
        {},
        {},
    )
    assert [c.business_cluster for c in change.stage_changes] == []  # vip was in copilot already
    assert change.held[0].startswith("retail: would move selective -> copilot; held: stage set by hand by bob")
    assert change.held[1] == "retail: stays selective and runs nothing unattended until the learning loop recertifies"

    in_logging = ServicePointer(manual={"vip": HELD_LOGGING}, stages={"vip": Stage.logging}, revision=1)
    first = change_models(in_logging, SCHEMA, "policy/p1", None, "first")
    assert first.pointer.stage("vip") is Stage.logging and first.pointer.stage("retail") is Stage.copilot
    assert [c.business_cluster for c in first.stage_changes] == ["retail"]


def test_a_new_schema_keeps_hand_controls_and_says_which_ones_outlive_their_cluster() -> None:
    held = SELECTIVE.model_copy(update={"manual": {"retail": HELD_SELECTIVE}, "paused": {"vip": PAUSE}})
    new = SCHEMA.model_copy(update={"version": 2, "business_clusters": [BusinessCluster(id="retail")]})
    change = reset_for_schema(held, SCHEMA, new, "schema replaced by ada")
    pointer = change.pointer
    assert pointer.policy is None and pointer.certificates == {} and pointer.thresholds.values == {}
    assert (
        pointer.stage("retail") is Stage.selective and pointer.manual == held.manual and pointer.paused == held.paused
    )
    assert change.stage_changes == []
    assert change.held[0].startswith("retail: would move selective -> logging; held: stage set by hand by bob")
    assert change.held[1] == (
        "hand controls of clusters no longer in the schema stay until lifted (selauto stage release, "
        "selauto resume): vip"
    )
