"""What a worker serves: processes that load, and registered ones that do not yet (deferred)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from selective_autonomy.agents.gate import GateOutcome
from selective_autonomy.agents.models_in_service import DEFAULT_STAGE_CLUSTER, ModelsInService, demoted_clusters
from selective_autonomy.inference.ngram import NGramPolicy
from selective_autonomy.inference.registry import ModelRegistry, Pause, ServicePointer
from selective_autonomy.inference.thresholds import Thresholds
from selective_autonomy.schemas.event_parts import Action, DeferralReason, Stage, UIState
from selective_autonomy.schemas.events import OperatorDeferral
from selective_autonomy.schemas.process import ActionSpec, ProcessSchema
from selective_autonomy.traces.format import Case, TraceStep
from tests.factories import BILLING as SCHEMA
from tests.factories import T0, event

LOOKUP = Action(action_type="lookup_order", arguments={"order_id": "A1"})


def test_a_process_registered_before_its_policy_is_known_and_deferred(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    registry.save_schema(ProcessSchema(process_id="billing", controls=[ActionSpec(name="lookup_order")]))
    models = ModelsInService(registry)
    assert models.refresh() == []
    assert "no policy in service" in models.load_errors["billing"]
    engine = models.current()
    assert engine.knows("billing")
    [decision] = engine.decide([event("s1", 1)], {})
    record = decision.output()
    assert isinstance(record, OperatorDeferral) and record.reason is DeferralReason.model_unavailable


def install_policy(registry: ModelRegistry, pointer: ServicePointer) -> ServicePointer:
    """An n-gram policy that always proposes lookup_order, in service with ``pointer``'s settings."""
    cases = [
        Case(
            case_id=f"c{i}",
            process_id="billing",
            business_cluster="retail",
            started_at=T0,
            steps=[TraceStep(state=UIState(), action=LOOKUP, timestamp=T0 + timedelta(seconds=1))],
        )
        for i in range(3)
    ]
    policy = NGramPolicy(SCHEMA).fit(cases)
    meta = policy.train_meta(cases)
    policy.save(registry.process_dir("billing") / "policy" / meta.version, meta)
    return registry.publish("billing", pointer.model_copy(update={"policy": f"policy/{meta.version}"}))


def test_a_pause_and_a_demotion_reach_the_decide_path_even_when_the_new_models_do_not_load(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    registry.save_schema(SCHEMA)
    thresholds = Thresholds(values={f"billing/{c}/auto": 0.0 for c in ("retail", "vip")})
    install_policy(registry, ServicePointer(thresholds=thresholds, default_stage=Stage.selective))
    models = ModelsInService(registry)
    assert models.refresh() == ["billing"]
    batch = [event("s1", 1, cluster="retail"), event("s2", 1, cluster="vip")]
    assert [d.outcome for d in models.current().decide(batch, {})] == [GateOutcome.execute, GateOutcome.execute]

    # A newer pointer names a policy that is not there, pauses retail and demotes vip.
    broken = registry.pointer("billing").model_copy(
        update={
            "policy": "policy/missing",
            "paused": {"retail": Pause(reason="incident", by="alice", at=T0)},
            "stages": {"vip": Stage.copilot},
        }
    )
    registry.update("billing", lambda _: broken)
    assert models.refresh() == [] and "billing" in models.load_errors
    decided = models.current().decide(batch, {})
    assert [d.gate.reason for d in decided] == [DeferralReason.paused, DeferralReason.copilot_stage]
    assert models.current().models["billing"].pointer.policy != "policy/missing"  # still the loaded version


def test_a_pointer_without_policy_takes_the_loaded_models_out_of_service(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    registry.save_schema(SCHEMA)
    step = TraceStep(state=UIState(), action=Action(action_type="send_invoice"), timestamp=T0)
    cases = [Case(case_id="c1", process_id="billing", business_cluster="retail", started_at=T0, steps=[step])]
    policy = NGramPolicy(SCHEMA).fit(cases)
    meta = policy.train_meta(cases)
    policy.save(registry.process_dir("billing") / "policy" / meta.version, meta)
    registry.publish("billing", ServicePointer(policy=f"policy/{meta.version}"))
    models = ModelsInService(registry)
    assert models.refresh() == ["billing"]
    assert models.versions()["billing"]["policy"] == meta.version

    # What `selauto process add --replace` publishes: the old models are void, none replaces them.
    registry.publish("billing", registry.pointer("billing").model_copy(update={"policy": None}))
    assert models.refresh() == ["billing"]
    assert models.versions() == {} and "no policy in service" in models.load_errors["billing"]
    [decision] = models.current().decide([event("s1", 1)], {})
    record = decision.output()
    assert isinstance(record, OperatorDeferral) and record.reason is DeferralReason.model_unavailable
    assert models.refresh() == []  # nothing to retry until the pointer changes


def test_demoted_clusters_compares_each_cluster_and_the_default_stage() -> None:
    before = ServicePointer(stages={"retail": Stage.selective, "vip": Stage.copilot}, default_stage=Stage.copilot)
    assert demoted_clusters(before, before) == []
    after = ServicePointer(stages={"retail": Stage.copilot, "vip": Stage.selective}, default_stage=Stage.logging)
    assert demoted_clusters(before, after) == ["retail", DEFAULT_STAGE_CLUSTER]
    # A cluster that loses its own stage falls back to the default: lower here, so demoted.
    assert demoted_clusters(before, ServicePointer(stages={"vip": Stage.copilot}, default_stage=Stage.copilot)) == [
        "retail"
    ]


def test_every_pointer_in_service_reports_its_clusters_and_demotions(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    registry.save_schema(SCHEMA)
    seen: list[tuple[str, list[str], list[str]]] = []
    models = ModelsInService(registry, on_stages=lambda *args: seen.append(args))
    install_policy(registry, ServicePointer(stages={"retail": Stage.selective, "vip": Stage.selective}))
    models.refresh()
    assert seen == [("billing", ["retail", "vip", DEFAULT_STAGE_CLUSTER], [])], "a first load demotes nothing"

    registry.update(
        "billing", lambda p: p.model_copy(update={"stages": {"retail": Stage.selective, "vip": Stage.copilot}})
    )
    models.refresh()
    assert seen[-1] == ("billing", ["retail", "vip", DEFAULT_STAGE_CLUSTER], ["vip"])
    models.refresh()
    assert len(seen) == 2, "an unchanged pointer reports nothing"

    # A demotion applied from a pointer whose models do not load counts as well.
    broken = registry.pointer("billing").model_copy(
        update={"policy": "policy/missing", "stages": {"retail": Stage.logging, "vip": Stage.copilot}}
    )
    registry.update("billing", lambda _: broken)
    models.refresh()
    assert seen[-1] == ("billing", ["retail", "vip", DEFAULT_STAGE_CLUSTER], ["retail"])
