"""Synthetic ABCD sessions: valid under the ABCD schema, follow their guideline, seeded noise."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from selective_autonomy.schemas.grammar import validate_action
from selective_autonomy.schemas.process import ProcessSchema
from selective_autonomy.simulator.errors import SimulatorError
from selective_autonomy.simulator.synthetic import NoiseConfig, SyntheticConfig, synthesize_case, synthetic_abcd_cases
from selective_autonomy.traces import datasets
from selective_autonomy.traces.abcd import IntentSequence, abcd_intent_sequences, abcd_process_schema
from selective_autonomy.traces.validate import case_violations

QUIET = NoiseConfig(skip_rate=0.0, swap_rate=0.0, insert_rate=0.0)


@pytest.fixture(scope="module")
def abcd(shared_data: Path) -> tuple[ProcessSchema, dict[str, IntentSequence]]:
    try:
        folder: Path = datasets.abcd_data_dir(shared_data)
    except FileNotFoundError as error:
        pytest.skip(f"ABCD not available here: {error}")
    return abcd_process_schema(folder), abcd_intent_sequences(folder)


def test_cases_validate_and_follow_their_guideline(abcd: tuple[ProcessSchema, dict[str, IntentSequence]]) -> None:
    schema, sequences = abcd
    cases = list(synthetic_abcd_cases(SyntheticConfig(cases=300, noise=QUIET), schema=schema, sequences=sequences))
    assert len(cases) == 300
    assert case_violations(schema, cases) == []
    assert all(not validate_action(schema, step.action) for case in cases for step in case.steps)
    flows = Counter(case.business_cluster for case in cases)
    assert set(flows) <= {cluster.id for cluster in schema.business_clusters} and len(flows) == 10
    for case in cases:
        sequence = sequences[str(case.attributes["subflow"])]
        assert case.business_cluster == sequence.flow
        assert tuple(step.action.action_type for step in case.steps) == (*sequence.actions, "close_chat")
        assert [step.state.recent_actions for step in case.steps[1:]][-1] == [s.action for s in case.steps[:-1]]
        assert case.steps[0].state.fields == {} and case.steps[0].state.chat_tail[0].text.startswith("Hi, I need")
        times = [case.started_at, *(step.timestamp for step in case.steps)]
        assert times == sorted(times) and times[-1] > times[0]
    # A session keeps one customer: every customer_name entered in it is the same.
    for case in cases:
        names = {s.action.arguments["customer_name"] for s in case.steps if "customer_name" in s.action.arguments}
        assert len(names) <= 1
    pulled = [s.action for c in cases for s in c.steps if s.action.action_type == "pull-up-account"]
    assert pulled and all("customer_name" in a.arguments for a in pulled)  # first enumerated slot is always set


def test_noise_is_seeded_and_counted(abcd: tuple[ProcessSchema, dict[str, IntentSequence]]) -> None:
    schema, sequences = abcd
    noisy = SyntheticConfig(cases=400, seed=3, noise=NoiseConfig(skip_rate=0.1, swap_rate=0.1, insert_rate=0.1))
    cases = list(synthetic_abcd_cases(noisy, schema=schema, sequences=sequences))
    assert case_violations(schema, cases) == []
    again = list(synthetic_abcd_cases(noisy, schema=schema, sequences=sequences))
    assert [c.model_dump() for c in again] == [c.model_dump() for c in cases]
    slips = Counter(
        {k: sum(int(c.attributes[f"noise_{k}"] or 0) for c in cases) for k in ("skips", "swaps", "inserts")}
    )
    required = sum(len(sequences[str(c.attributes["subflow"])].actions) for c in cases)
    assert 0.06 < slips["skips"] / required < 0.14 and 0.06 < slips["inserts"] / required < 0.14
    assert slips["swaps"] > 0
    deviating = [
        c
        for c in cases
        if tuple(s.action.action_type for s in c.steps[:-1]) != sequences[str(c.attributes["subflow"])].actions
    ]
    clean = [c for c in cases if not any(c.attributes[f"noise_{k}"] for k in ("skips", "swaps", "inserts"))]
    assert deviating and clean and not set(map(id, deviating)) & set(map(id, clean))


def test_unknown_intent_is_refused(abcd: tuple[ProcessSchema, dict[str, IntentSequence]]) -> None:
    schema, sequences = abcd
    with pytest.raises(SimulatorError, match="unknown ABCD subflows"):
        list(synthetic_abcd_cases(SyntheticConfig(intents=["nope"]), schema=schema, sequences=sequences))
    only = SyntheticConfig(cases=5, intents=["refund_initiate"], noise=QUIET)
    cases = list(synthetic_abcd_cases(only, schema=schema, sequences=sequences))
    assert {c.attributes["subflow"] for c in cases} == {"refund_initiate"}
    one = synthesize_case(sequences["refund_initiate"], schema, 2, only)
    assert one.model_dump() == cases[2].model_dump()
