"""ABCD: the process schema from the ontology, the subflow sequences, and the sample conversations."""

from __future__ import annotations

from pathlib import Path

from selective_autonomy.schemas.event_parts import ActionTier
from selective_autonomy.schemas.process import ProcessSchema, ValueType
from selective_autonomy.traces.abcd import abcd_intent_sequences, abcd_process_schema, iter_abcd_sample_cases
from selective_autonomy.traces.validate import case_violations


def test_schema(abcd_path: Path) -> None:
    schema = abcd_process_schema(abcd_path)
    assert len(schema.controls) == 30
    assert [c.id for c in schema.business_clusters][:2] == ["account_access", "manage_account"]
    assert len(schema.business_clusters) == 10
    refund = schema.action("offer-refund")
    assert refund is not None and refund.tier is ActionTier.approval_required
    assert [(a.name, a.type) for a in refund.arguments] == [("amount", ValueType.number)]
    assert schema.action("update-account").tier is ActionTier.approval_required  # type: ignore[union-attr]
    assert schema.action("pull-up-account").tier is ActionTier.auto  # type: ignore[union-attr]
    assert schema.action("notify-team").tier is ActionTier.critical  # type: ignore[union-attr]
    team = schema.action("notify-team").arguments[0]  # type: ignore[union-attr]
    assert team.type is ValueType.enum and team.enum == ["manager", "website team", "purchasing department"]
    assert {"customer_name", "email", "phone", "account_id"} <= schema.pii_fields
    assert ProcessSchema.from_yaml(schema.to_yaml()) == schema


def test_intent_sequences(abcd_path: Path) -> None:
    schema = abcd_process_schema(abcd_path)
    sequences = abcd_intent_sequences(abcd_path)
    assert len(sequences) == 55
    refund = sequences["refund_initiate"]
    assert refund.flow == "product_defect"
    assert refund.actions == ("pull-up-account", "validate-purchase", "record-reason", "enter-details", "offer-refund")
    assert {s.flow for s in sequences.values()} == {c.id for c in schema.business_clusters}
    assert all(action in schema.action_names for s in sequences.values() for action in s.actions)


def test_sample_cases_fit_the_schema(abcd_path: Path) -> None:
    schema = abcd_process_schema(abcd_path)
    cases = list(iter_abcd_sample_cases(abcd_path, schema))
    steps = sum(len(c.steps) for c in cases)
    print(f"abcd samples: cases={len(cases)} steps={steps}")
    assert len(cases) == 3
    assert case_violations(schema, cases) == []
    first = cases[0]
    assert first.business_cluster == "product_defect" and first.attributes["subflow"] == "return_size"
    pull = next(i for i, s in enumerate(first.steps) if s.action.action_type == "pull-up-account")
    assert first.steps[pull].action.arguments == {"customer_name": "Crystal Minh"}
    assert "customer_name" not in first.steps[pull].state.fields
    assert first.steps[pull + 1].state.fields["customer_name"] == "Crystal Minh"
    assert all(c.steps[-1].action.action_type == "close_chat" for c in cases)
    assert all("unnamed_values" not in c.attributes for c in cases)
