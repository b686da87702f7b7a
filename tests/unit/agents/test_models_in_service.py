"""What a worker serves: processes that load, and registered ones that do not yet (deferred)."""

from __future__ import annotations

from pathlib import Path

from selective_autonomy.agents.models_in_service import ModelsInService
from selective_autonomy.inference.ngram import NGramPolicy
from selective_autonomy.inference.registry import ModelRegistry, ServicePointer
from selective_autonomy.schemas.events import Action, DeferralReason, OperatorDeferral, UIState
from selective_autonomy.schemas.process import ActionSpec, ProcessSchema
from selective_autonomy.traces.format import Case, TraceStep
from tests.unit.agents.fixtures import SCHEMA, T0, event


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
