"""The embedded policy: reads the state, never proposes what the grammar rejects, trains reproducibly."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from selective_autonomy.inference.action_templates import (
    ActionTemplate,
    discrete_arguments,
    history_key,
    select_templates,
)
from selective_autonomy.inference.artefact import ArtefactError
from selective_autonomy.inference.datasets import ProcessCases, case_examples
from selective_autonomy.inference.embedded_policy import KIND, EmbeddedPolicy
from selective_autonomy.inference.evaluation import evaluate_policy
from selective_autonomy.inference.loaders import builtin_loaders
from selective_autonomy.inference.ngram import NGramPolicy
from selective_autonomy.inference.protocol import Policy
from selective_autonomy.schemas.event_parts import Action, Scalar
from selective_autonomy.schemas.grammar import is_valid_action, validate_action
from selective_autonomy.schemas.process import ActionSpec, ArgumentSpec, ProcessSchema, UIField
from selective_autonomy.traces.format import Case

from .support import fast_config, synthetic_case, synthetic_cases, synthetic_schema


@pytest.fixture(scope="module")
def trained() -> tuple[EmbeddedPolicy, list[Case]]:
    cases = synthetic_cases(240)
    return EmbeddedPolicy.train(synthetic_schema(), cases[:160], fast_config()), cases[160:]


def test_is_a_policy(trained: tuple[EmbeddedPolicy, list[Case]]) -> None:
    policy, _ = trained
    assert isinstance(policy, Policy)
    assert policy.version == f"{KIND}-untrained"
    assert policy.propose([]) == []


def test_beats_ngram_when_the_next_action_depends_on_a_field(trained: tuple[EmbeddedPolicy, list[Case]]) -> None:
    policy, test = trained
    examples = case_examples(test)
    ngram = NGramPolicy(synthetic_schema()).fit(synthetic_cases(240)[:160])
    embedded_report = evaluate_policy("embedded", policy, examples)
    ngram_report = evaluate_policy("ngram", ngram, examples)
    # The n-gram guesses escalate/resolve and the queue; the embedded policy reads and copies them.
    assert embedded_report.top1 >= 0.95
    assert ngram_report.top1 <= 0.75
    assert embedded_report.per_action_type["assign"].top1 == 1.0


def test_copies_a_field_value_never_seen_in_training() -> None:
    schema = synthetic_schema(queues=["L1", "L2", "L3", "L4", "NEW"])
    policy = EmbeddedPolicy.train(schema, synthetic_cases(160, queues=["L1", "L2", "L3", "L4"]), fast_config())
    case = synthetic_case(999, "high", "NEW")
    top = policy.propose([case.state_event(2)], top_k=1)[0].top
    assert top is not None
    assert top.action == Action(action_type="assign", arguments={"queue": "NEW"})


def test_never_proposes_what_the_grammar_rejects(trained: tuple[EmbeddedPolicy, list[Case]]) -> None:
    policy, test = trained
    # Force the masked indices (padding, unknown) to dominate the type head: still never proposed.
    with torch.no_grad():
        policy.net.type_head.bias[policy.net.invalid] = 1e4
    try:
        events = [c.state_event(i) for c in test[:20] for i in range(len(c.steps))]
        # A copied field holding a value outside the argument's enum must not produce a candidate.
        bogus = synthetic_case(1000, "low", "BOGUS").state_event(2)
        proposals = policy.propose([*events, bogus], top_k=10)
    finally:
        with torch.no_grad():
            policy.net.type_head.bias[policy.net.invalid] = 0.0
    for proposal in proposals:
        for candidate in proposal.candidates:
            assert validate_action(policy.schema, candidate.action) == []
    assert all(c.action.arguments.get("queue") != "BOGUS" for c in proposals[-1].candidates)
    assert proposals[-1].candidates, "the valid templates are still proposed"


def test_actions_the_schema_rejects_are_not_learned() -> None:
    # A crafted schema in which the recorded `assign` lacks the required `reason`: never proposed.
    base = synthetic_schema()
    controls = [c for c in base.controls if c.name != "assign"]
    assign = base.controls[-1].model_copy(
        update={
            "arguments": [
                *base.controls[-1].arguments,
                base.controls[-1].arguments[0].model_copy(update={"name": "reason"}),
            ]
        }
    )
    schema = base.model_copy(update={"controls": [*controls, assign]})
    cases = synthetic_cases(80)
    policy = EmbeddedPolicy.train(schema, cases, fast_config(max_epochs=3))
    assert policy.dropped_examples == 80
    events = [c.state_event(i) for c in cases[:10] for i in range(len(c.steps))]
    for proposal in policy.propose(events, top_k=10):
        assert all(is_valid_action(schema, c.action) for c in proposal.candidates)
        assert all(c.action.action_type != "assign" for c in proposal.candidates)


def test_save_load_round_trip(trained: tuple[EmbeddedPolicy, list[Case]], tmp_path: Path) -> None:
    policy, test = trained
    meta = policy.train_meta(synthetic_cases(240)[:160], {"val_loss": 0.1})
    policy.save(tmp_path, meta)
    loaded = builtin_loaders().load_policy(tmp_path, policy.schema)  # as the registry loads it
    assert isinstance(loaded, EmbeddedPolicy)
    assert loaded.version == meta.version == policy.version
    events = [c.state_event(i) for c in test[:10] for i in range(len(c.steps))]
    assert loaded.propose(events, top_k=3) == policy.propose(events, top_k=3)
    with pytest.raises(ArtefactError):
        EmbeddedPolicy.load(tmp_path, synthetic_schema(queues=["other"]))


def test_training_is_deterministic_with_the_seed() -> None:
    cases = synthetic_cases(60)
    first = EmbeddedPolicy.train(synthetic_schema(), cases, fast_config(seed=3, max_epochs=3))
    second = EmbeddedPolicy.train(synthetic_schema(), cases, fast_config(seed=3, max_epochs=3))
    other = EmbeddedPolicy.train(synthetic_schema(), cases, fast_config(seed=4, max_epochs=3))
    a, b, c = first.net.state_dict(), second.net.state_dict(), other.net.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_templates_copy_fields_and_keep_constants() -> None:
    fields: dict[str, Scalar] = {"city": "Rome", "other": "Rome", "count": 2}
    action = Action(action_type="Find", arguments={"city": "Rome", "kind": "hotel", "n": 2, "flag": True})
    template = ActionTemplate.of(action, fields)
    assert dict(template.copies) == {"city": "city", "n": "count"}
    assert dict(template.constants) == {"kind": "hotel", "flag": True}
    assert template.fill({"city": "Milan", "count": 3}) == Action(
        action_type="Find", arguments={"city": "Milan", "kind": "hotel", "n": 3, "flag": True}
    )
    assert template.fill({"count": 3}) is None
    assert ActionTemplate.from_json(template.to_json()) == template


def test_history_keys_keep_discrete_arguments_only() -> None:
    schema = synthetic_schema()
    discrete = discrete_arguments(schema)
    assert history_key(Action(action_type="assign", arguments={"queue": "L1"}), discrete) == "assign|queue='L1'"
    assert history_key(Action(action_type="send_text", arguments={"text": "hi"}), discrete) == "send_text|text=*"
    assert history_key(Action(action_type="triage"), discrete) == "triage"


def test_helpdesk_slice(helpdesk_slice: ProcessCases) -> None:
    schema, cases = helpdesk_slice.schema, helpdesk_slice.cases
    policy = EmbeddedPolicy.train(schema, cases[:200], fast_config(max_epochs=3))
    events = [c.state_event(i) for c in cases[200:] for i in range(len(c.steps))]
    proposals = policy.propose(events, top_k=3)
    assert len(proposals) == len(events)
    assert all(p.candidates and len(p.candidates) <= 3 for p in proposals)
    assert all(p.candidates[0].probability >= p.candidates[-1].probability for p in proposals)
    assert all(is_valid_action(schema, c.action) for p in proposals for c in p.candidates)


def test_pii_arguments_are_copied_never_memorised() -> None:
    schema = ProcessSchema(
        process_id="pii",
        fields=[UIField(name="name", pii=True)],
        controls=[ActionSpec(name="greet", arguments=[ArgumentSpec(name="who", pii=True)])],
    )
    memorised: list[tuple[Action, dict[str, Scalar]]] = [
        (Action(action_type="greet", arguments={"who": "Ann"}), {})
    ] * 3
    copied: list[tuple[Action, dict[str, Scalar]]] = [
        (Action(action_type="greet", arguments={"who": "Bob"}), {"name": "Bob"})
    ] * 3
    assert select_templates(schema, memorised, limit=10, min_count=1) == []
    (template,) = select_templates(schema, [*memorised, *copied], limit=10, min_count=1)
    assert template.copies == (("who", "name"),)
    assert discrete_arguments(schema) == {"greet": frozenset(), **{a.name: frozenset() for a in schema.chat_actions}}
