"""What a worker serves: processes that load, and registered ones that do not yet (deferred)."""

from __future__ import annotations

from pathlib import Path

from selective_autonomy.agents.models_in_service import ModelsInService
from selective_autonomy.inference.registry import ModelRegistry
from selective_autonomy.schemas.events import DeferralReason, OperatorDeferral
from selective_autonomy.schemas.process import ActionSpec, ProcessSchema
from tests.unit.agents.fixtures import event


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
