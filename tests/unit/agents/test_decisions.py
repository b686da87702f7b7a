"""The decision engine: batching, model failures, and one well-formed record per decision."""

from __future__ import annotations

from dataclasses import replace

from selective_autonomy.agents.decisions import DecisionEngine, deferral_id_for
from selective_autonomy.agents.gate import GateOutcome, SessionProgress
from selective_autonomy.agents.session import SessionState, Skip, ends_session
from selective_autonomy.inference.registry import Pause, ProcessModels
from selective_autonomy.schemas.event_parts import Action, Actor, DeferralReason, Stage
from selective_autonomy.schemas.events import ActionExecuted, ActionProposed, OperatorDeferral, action_id_for
from selective_autonomy.schemas.sampling import in_exploration_holdout
from tests.factories import T0, event
from tests.support.models import FixedPolicy, models

LOOKUP = Action(action_type="lookup_order", arguments={"order_id": "A1"})


def test_selective_execution_emits_action_executed_with_deterministic_id() -> None:
    engine = DecisionEngine({"billing": models(LOOKUP)})
    [decision] = engine.decide([event("s1", 3)], {})
    record = decision.output()
    assert isinstance(record, ActionExecuted)
    assert record.action_id == action_id_for("s1", 3, LOOKUP)
    assert record.critic_score == 0.99
    assert record.threshold == 0.9
    assert record.policy_version == "fixed-1"
    assert record.critic_version == "critic-1"


def test_copilot_defers_every_step_with_the_suggestion_and_its_scores() -> None:
    engine = DecisionEngine({"billing": models(LOOKUP, stage=Stage.copilot)})
    [decision] = engine.decide([event("s1", 3)], {})
    record = decision.output()
    assert isinstance(record, OperatorDeferral)
    assert record.reason is DeferralReason.copilot_stage
    assert record.suggestion == LOOKUP
    assert record.critic_score == 0.99
    assert record.deferral_id == deferral_id_for("s1", 3)
    assert record.ui_state == event("s1", 3).ui_state


def test_logging_records_a_proposal_and_never_asks_the_critic() -> None:
    bundle = models(LOOKUP, stage=Stage.logging)
    [decision] = DecisionEngine({"billing": bundle}).decide([event()], {})
    assert isinstance(decision.output(), ActionProposed)
    assert bundle.critic.seen == []  # type: ignore[attr-defined]


def test_one_policy_call_per_process_per_batch() -> None:
    bundle = models(LOOKUP)
    decisions = DecisionEngine({"billing": bundle}).decide([event(f"s{i}", i) for i in range(50)], {})
    assert len(decisions) == 50
    assert isinstance(bundle.policy, FixedPolicy)
    assert bundle.policy.calls == 1
    assert [d.event.session_id for d in decisions] == [f"s{i}" for i in range(50)]


def test_unreachable_policy_or_critic_defers_as_model_unavailable() -> None:
    for bundle in (models(LOOKUP, policy_fails=True), models(LOOKUP, critic_fails=True)):
        [decision] = DecisionEngine({"billing": bundle}).decide([event()], {})
        assert decision.outcome is GateOutcome.defer
        assert decision.gate.reason is DeferralReason.model_unavailable


def test_guardrail_uses_session_progress() -> None:
    engine = DecisionEngine({"billing": models(Action(action_type="send_invoice"))})
    [fresh] = engine.decide([event(cluster="vip")], {"s1": SessionProgress(autonomous_steps=0)})
    [tired] = engine.decide([event(cluster="vip")], {"s1": SessionProgress(autonomous_steps=2)})
    assert fresh.outcome is GateOutcome.execute
    assert tired.gate.reason is DeferralReason.guardrail


def test_session_state_skips_stale_and_duplicate_states_and_resumes_after_operator() -> None:
    state = SessionState()
    first = event("s1", 1)
    assert state.skip_reason(first) is None
    state = state.after(first, GateOutcome.defer, None, "d1")
    assert state.pending_deferral_id == "d1"
    assert state.skip_reason(first) is Skip.duplicate
    assert state.skip_reason(event("s1", 0)) is Skip.stale
    operator_step = event("s1", 2).model_copy(update={"actor": Actor.operator})
    state = state.after(operator_step, GateOutcome.execute, "a2", None)
    assert state.pending_deferral_id is None
    assert state.autonomous_steps == 1
    assert state.already_executed("a2")
    assert SessionState.model_validate(state.model_dump()) == state


def test_deferrals_say_the_stage_they_were_handled_in_and_how_likely_their_label_was() -> None:
    copilot = DecisionEngine({"billing": models(LOOKUP, stage=Stage.copilot)}).decide([event("s1", 3)], {})[0].output()
    below = DecisionEngine({"billing": models(LOOKUP, score=0.5)}).decide([event("s1", 3)], {})[0].output()
    assert isinstance(copilot, OperatorDeferral) and isinstance(below, OperatorDeferral)
    assert (copilot.stage, copilot.inclusion_probability) == (Stage.copilot, 1.0)
    assert (below.stage, below.inclusion_probability) == (Stage.selective, None)  # labelled for its low score
    assert copilot.state_at == event("s1", 3).timestamp


def test_the_exploration_holdout_is_a_fixed_share_of_sessions_judged_by_operators() -> None:
    base = models(LOOKUP)
    explored = ProcessModels(
        base.schema, base.policy, base.critic, base.pointer.model_copy(update={"exploration_share": 0.2})
    )
    engine = DecisionEngine({"billing": explored})
    sessions = [f"s{i}" for i in range(500)]
    records = [d.output() for d in engine.decide([event(s, 2) for s in sessions], {})]
    held = [r for r in records if isinstance(r, OperatorDeferral)]
    assert all(r.reason is DeferralReason.exploration and r.stage is Stage.copilot for r in held)
    assert all(r.inclusion_probability == 0.2 for r in held)
    assert {r.session_id for r in held} == {s for s in sessions if in_exploration_holdout(s, 0.2)}
    assert 0.14 * 500 < len(held) < 0.26 * 500
    # The same session is in the holdout at every step: its whole trajectory stays labelled.
    later = engine.decide([event(r.session_id, 5) for r in held], {})
    assert all(d.gate.reason is DeferralReason.exploration for d in later)


def test_a_registered_process_without_models_defers_every_state_to_an_operator() -> None:
    engine = DecisionEngine({"billing": models(LOOKUP)}, unavailable={"shipping": "no policy in service"})
    assert engine.knows("shipping") and not engine.knows("nope")
    served, waiting = engine.decide([event("s1", 3), event("s2", 1, process="shipping")], {})
    assert served.outcome is GateOutcome.execute
    record = waiting.output()
    assert isinstance(record, OperatorDeferral)
    assert record.reason is DeferralReason.model_unavailable
    assert "no policy in service" in record.detail
    assert record.suggestion is None and record.inclusion_probability is None  # no evidence for a certificate
    assert record.ui_state == event("s2", 1, process="shipping").ui_state


def paused(bundle: ProcessModels, scope: str) -> ProcessModels:
    pause = Pause(reason="incident 42", by="alice", at=T0)
    return replace(bundle, pointer=bundle.pointer.model_copy(update={"paused": {scope: pause}}))


def test_a_cluster_pause_defers_that_cluster_only_and_a_process_pause_every_cluster() -> None:
    batch = [event("s1", 1, cluster="retail"), event("s2", 1, cluster="vip")]
    by_cluster = DecisionEngine({"billing": paused(models(LOOKUP), "retail")}).decide(batch, {})
    assert [d.outcome for d in by_cluster] == [GateOutcome.defer, GateOutcome.execute]
    record = by_cluster[0].output()
    assert isinstance(record, OperatorDeferral) and record.reason is DeferralReason.paused
    assert record.detail.startswith("autonomy paused for cluster retail by alice") and "incident 42" in record.detail
    assert record.suggestion == LOOKUP and record.stage is Stage.selective
    whole = DecisionEngine({"billing": paused(models(LOOKUP), "*")}).decide(batch, {})
    assert [d.gate.reason for d in whole] == [DeferralReason.paused, DeferralReason.paused]
    assert "for the whole process" in whole[1].gate.detail


def test_the_screen_an_ending_action_left_is_not_decided() -> None:
    ending = frozenset({"close_chat"})
    closed = event("s1", 4).model_copy(
        update={"actor": Actor.operator, "last_action": Action(action_type="close_chat")}
    )
    assert ends_session(closed, ending)
    assert not ends_session(closed.model_copy(update={"last_action": LOOKUP}), ending)
    assert not ends_session(event("s1", 0), ending)  # no action yet
    assert not ends_session(closed, frozenset())


def test_records_built_without_validation_pass_it_and_round_trip_through_avro() -> None:
    # output() skips pydantic's validation on the hot path: each record it builds must still be one
    # that validation accepts (ActionExecuted checks its id) and that encodes and decodes unchanged.
    from selective_autonomy.streams.serialization import AvroCodec

    codec = AvroCodec()
    records = [
        DecisionEngine({"billing": models(LOOKUP, stage=stage, score=score)}).decide([event("s1", 3)], {})[0].output()
        for stage, score in (
            (Stage.selective, 0.99),
            (Stage.selective, 0.5),
            (Stage.copilot, 0.99),
            (Stage.logging, 0.9),
        )
    ]
    assert [type(r) for r in records] == [ActionExecuted, OperatorDeferral, OperatorDeferral, ActionProposed]
    for record in records:
        assert record is not None
        assert type(record).model_validate(record.model_dump()) == record
        assert codec.decode(codec.encode(record, "topic"), type(record)) == record
