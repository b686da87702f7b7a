"""The replay's session logic against an in-memory decide agent: trajectories, duplicates, stalls."""

from __future__ import annotations

import math

from selective_autonomy.schemas.event_parts import Actor, DeferralReason, Verdict
from selective_autonomy.schemas.events import UIStateChanged, action_id_for
from selective_autonomy.schemas.sampling import audit_start
from selective_autonomy.simulator.operator_model import (
    HandlingTimeModel,
    InterruptionPolicy,
    OperatorConfig,
    OperatorModel,
)
from selective_autonomy.simulator.sessions import ReplayConfig, SessionDriver, SessionStatus
from selective_autonomy.traces.format import trace_event_id
from tests.support.simulator import Recorder, act, deferred, executed, make_case, pump

LOOKUP, REPLY, CLOSE = act("lookup", order="A1"), act("reply"), act("close_chat")
CASE = make_case("c1", [LOOKUP, REPLY, CLOSE], [0, 30, 10])
HANDLING = HandlingTimeModel(step_seconds={"lookup": 20.0, "reply": 60.0, "close_chat": 10.0}, interruption_s=30.0)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def driver_for(recorder: Recorder, clock: Clock | None = None, **config: object) -> SessionDriver:
    return SessionDriver(
        recorder,
        config=ReplayConfig.model_validate({"run_id": "r1", "decision_timeout_s": 5.0, **config}),
        handling=HANDLING,
        clock=clock or Clock(),
    )


def recorded_action(state: UIStateChanged) -> object:
    return CASE.steps[state.state_version].action


def test_all_executed_correctly() -> None:
    recorder = Recorder()
    driver = driver_for(recorder)
    sid = driver.start(CASE)
    assert sid == "sim-r1/c1"
    pump(driver, recorder, lambda s: executed(s, CASE.steps[s.state_version].action))
    report = driver.report(2.0)
    assert report.sessions == report.sessions_completed == report.sessions_unattended == 1
    assert report.automation_rate == 1.0 and report.coverage == 1.0 and report.precision == 1.0
    assert report.steps == report.steps_executed == 3 and report.feedback == 0
    assert report.operator_time_s == 0.0 and report.baseline_time_s == 90.0 and report.handling_time_reduction == 1.0
    # The published states are the recorded screens, re-keyed to the session, with system as actor.
    assert [s.state_version for s in recorder.states] == [0, 1, 2]
    first, second = recorder.states[0], recorder.states[1]
    assert first.session_id == sid and first.event_id == trace_event_id(sid, 0) and first.last_action is None
    assert second.actor is Actor.system and second.last_action == LOOKUP
    assert second.last_action_id == action_id_for(sid, 0, LOOKUP)
    assert second.ui_state.fields == CASE.steps[1].state.fields
    assert second.timestamp == CASE.state_event(1).timestamp


def test_copilot_every_step_deferred_and_answered() -> None:
    recorder = Recorder()
    driver = driver_for(recorder)
    driver.start(CASE)
    suggestions = {0: LOOKUP, 1: CLOSE, 2: None}
    pump(driver, recorder, lambda s: deferred(s, suggestions[s.state_version]))
    report = driver.report(1.0)
    assert report.steps_deferred == report.feedback == report.steps == 3
    assert report.feedback_by_verdict == {"accepted": 1, "corrected": 2}
    assert report.deferrals_by_reason == {"copilot_stage": 3}
    assert report.sessions_completed == 1 and report.sessions_unattended == 0 and report.automation_rate == 0.0
    assert report.operator_time_s == (20 + 30) + (60 + 30) + (10 + 30)
    assert [f.verdict for f in recorder.feedback_sent] == [Verdict.accepted, Verdict.corrected, Verdict.corrected]
    assert recorder.feedback_sent[0].latency_ms == 50_000
    # After a deferral the operator performed the step: the next state says so.
    assert all(s.actor is Actor.operator for s in recorder.states[1:])
    assert recorder.states[2].last_action == REPLY  # corrected: the operator did the recorded action


def test_handover_interruptions_are_charged_once_per_takeover() -> None:
    recorder = Recorder()
    driver = SessionDriver(
        recorder,
        config=ReplayConfig(run_id="r1"),
        handling=HANDLING.model_copy(update={"interruption": InterruptionPolicy.handover}),
    )
    driver.start(CASE)
    pump(driver, recorder, lambda s: deferred(s, recorded_action(s)))  # type: ignore[arg-type]
    assert driver.report(1.0).operator_time_s == 20 + 60 + 10 + 30


def wrong_then_deferred_then_right(wrong: object) -> object:
    def decide(state: UIStateChanged) -> object:
        if state.state_version == 0:
            return executed(state, wrong)  # type: ignore[arg-type]
        if state.state_version == 1:
            return deferred(state, REPLY, DeferralReason.below_threshold)
        return executed(state, CLOSE)

    return decide


def test_a_wrong_unattended_step_is_undone_and_the_session_goes_back_on_its_record() -> None:
    recorder = Recorder()
    driver = driver_for(recorder)
    sid = driver.start(CASE)
    wrong = act("lookup", order="B2")
    pump(driver, recorder, wrong_then_deferred_then_right(wrong))  # type: ignore[arg-type]
    report = driver.report(1.0)
    assert report.steps_executed == 2 and report.executed_correct == 1 and report.automation_errors == 1
    assert report.precision == 0.5 and report.coverage == 2 / 3
    [error] = report.automation_error_examples
    assert (error.step, error.executed, error.recorded) == (0, wrong, LOOKUP)
    # The operator undid it and did the recorded step: every later step is judged on the record.
    after = recorder.states[1]
    assert after.last_action == LOOKUP and after.last_action_id == action_id_for(sid, 0, LOOKUP)
    assert after.ui_state.recent_actions == [LOOKUP] and after.ui_state.fields == CASE.steps[1].state.fields
    assert recorder.states[2].ui_state.recent_actions == [LOOKUP, REPLY]
    # Interruption + undo (as long as the step) + the step by hand, plus the deferred step.
    assert report.operator_time_s == (30 + 2 * 20) + (60 + 30)
    assert report.sessions_completed == 1 and report.sessions_unattended == 0


def test_the_earlier_semantics_kept_the_wrong_action_in_the_history() -> None:
    recorder = Recorder()
    driver = driver_for(recorder, after_wrong_step="follow_record")
    driver.start(CASE)
    wrong = act("lookup", order="B2")
    pump(driver, recorder, wrong_then_deferred_then_right(wrong))  # type: ignore[arg-type]
    assert recorder.states[1].ui_state.recent_actions == [wrong]  # what ran, under the recorded screen
    assert driver.report(1.0).operator_time_s == 60 + 30  # the wrong step cost nothing


def test_an_acceptable_alternative_that_runs_is_right() -> None:
    recorder = Recorder()
    driver = SessionDriver(
        recorder,
        config=ReplayConfig(run_id="r1"),
        operator=OperatorModel(OperatorConfig(alternatives={"reply": frozenset({"reply_template"})})),
        handling=HANDLING,
    )
    driver.start(CASE)
    pump(driver, recorder, lambda s: executed(s, act("reply_template") if s.state_version == 1 else recorded_action(s)))  # type: ignore[arg-type]
    report = driver.report(1.0)
    assert report.precision == 1.0 and report.automation_errors == 0 and report.sessions_unattended == 1


def test_duplicates_and_foreign_records_are_ignored_and_counted() -> None:
    recorder = Recorder()
    driver = driver_for(recorder)
    driver.start(CASE)
    first = executed(recorder.states[0], LOOKUP)
    driver.handle(first)
    driver.handle(first)  # redelivered
    driver.handle(deferred(recorder.states[0], LOOKUP))  # another decision for a step already checked
    second = deferred(recorder.states[1], REPLY)
    driver.handle(second)
    driver.handle(second)
    ghost = recorder.states[0].model_copy(update={"session_id": "someone-else"})
    driver.handle(executed(ghost, LOOKUP))
    ahead = recorder.states[2].model_copy(update={"state_version": 7})
    driver.handle(executed(ahead, CLOSE))
    driver.handle(executed(recorder.states[2], CLOSE))
    driver.handle(executed(recorder.states[2], CLOSE))  # after the session completed
    report = driver.report(1.0)
    assert report.duplicates_ignored == 4
    assert report.ignored_records == {"foreign_session": 1, "out_of_order": 1}
    assert report.steps_executed + report.steps_deferred == report.steps == 3
    assert report.feedback == 1 and len(recorder.feedback_sent) == 1 and len(recorder.states) == 3


def test_a_session_without_decision_stalls_and_late_decisions_are_ignored() -> None:
    clock = Clock()
    recorder = Recorder()
    driver = driver_for(recorder, clock)
    other = make_case("c2", [REPLY, CLOSE], [0, 5])
    driver.start(CASE)
    driver.start(other)
    driver.handle(executed(recorder.states[0], LOOKUP))
    clock.now = 4.0
    assert driver.expire() == []
    driver.handle(executed(recorder.states[1], REPLY))  # c2 step 0
    clock.now = 8.0  # c1 has waited 8 s for its step 1; c2 only 4 s for its step 1
    assert driver.expire() == ["sim-r1/c1"]
    clock.now = 9.5
    assert driver.expire() == ["sim-r1/c2"]
    assert driver.active == 0 and driver.finished == 2
    driver.handle(executed(recorder.states[2], REPLY))  # c1's step 1, too late
    report = driver.report(10.0)
    assert report.stalled_sessions == 2 and report.ignored_records == {"late": 1}
    assert report.sessions_completed == 0 and report.steps_decided == 2 < report.steps
    assert driver.sessions["sim-r1/c1"].status is SessionStatus.stalled


def test_session_ids_are_unique_within_a_run() -> None:
    recorder = Recorder()
    driver = driver_for(recorder)
    assert driver.start(CASE) == "sim-r1/c1"
    assert driver.start(CASE) == "sim-r1/c1#2"
    assert driver.active == 2 and driver.report(1.0).steps == 6


def test_audits_review_unattended_steps_and_report_wrong_ones() -> None:
    recorder = Recorder()
    driver = driver_for(recorder, audit_rate=1.0)
    driver.start(CASE)
    # The agent gets the second step wrong (CLOSE instead of REPLY); every unattended step is audited.
    pump(driver, recorder, lambda s: executed(s, CLOSE if s.state_version == 1 else CASE.steps[s.state_version].action))
    report = driver.report(1.0)
    assert report.audits == 3 and report.audits_corrected == 1
    audits = recorder.feedback_sent
    assert all(f.is_audit and f.deferral_id is None and f.inclusion_probability == 1.0 for f in audits)
    assert [f.verdict for f in audits] == [Verdict.accepted, Verdict.corrected, Verdict.accepted]
    assert audits[1].operator_action == REPLY and audits[1].suggestion == CLOSE
    # Audits are QA time, apart from the sessions' handling time (which pays for undoing step 1).
    assert report.audit_time_s == 3 * HANDLING.interruption_s
    assert report.operator_time_s == HANDLING.correction_s("reply")


def test_audits_sample_executed_steps_like_the_console_and_carry_the_rate() -> None:
    recorder = Recorder()
    driver = driver_for(recorder, audit_rate=0.3)
    cases = [make_case(f"c{i}", [LOOKUP, REPLY, CLOSE], [0, 30, 10]) for i in range(60)]
    for case in cases:
        driver.start(case)
    pump(driver, recorder, lambda s: executed(s, CASE.steps[s.state_version].action))
    audited = {f.suggestion_action_id for f in recorder.feedback_sent}
    every = {s.last_action_id for s in recorder.states if s.last_action_id} | {
        action_id_for(s.session_id, 2, CLOSE) for s in recorder.states if s.state_version == 2
    }
    # A systematic sample of the process's executed steps: 30% of them, rounded, none twice.
    assert audited <= every and len(audited) == len(recorder.feedback_sent)
    assert len(audited) == math.floor(audit_start("billing") + len(every) * 0.3)
    assert all(f.inclusion_probability == 0.3 for f in recorder.feedback_sent)


def test_log_time_stamps_feedback_with_the_steps_recorded_time() -> None:
    recorder = Recorder()
    driver = driver_for(recorder, log_time=True, audit_rate=1.0)
    driver.start(CASE)
    pump(driver, recorder, lambda s: deferred(s, LOOKUP) if s.state_version == 0 else executed(s, recorded_action(s)))  # type: ignore[arg-type]
    assert [f.given_at for f in recorder.feedback_sent] == [step.timestamp for step in CASE.steps]


def test_no_audits_by_default() -> None:
    recorder = Recorder()
    driver = driver_for(recorder)
    driver.start(CASE)
    pump(driver, recorder, lambda s: executed(s, CASE.steps[s.state_version].action))
    assert driver.report(1.0).audits == 0 and recorder.feedback_sent == []


def test_a_finished_session_leaves_its_last_screen_and_a_decision_on_it_is_not_a_step() -> None:
    recorder = Recorder()
    driver = driver_for(recorder, final_state=True)
    sid = driver.start(CASE)
    pump(driver, recorder, lambda s: deferred(s, recorded_action(s)) if s.state_version < 3 else None)  # type: ignore[arg-type]
    # One state per step, then the screen the last action left: the operator closed the chat.
    assert [s.state_version for s in recorder.states] == [0, 1, 2, 3]
    final = recorder.states[-1]
    assert final.session_id == sid and final.actor is Actor.operator and final.last_action == CLOSE
    assert final.last_action_id == action_id_for(sid, 2, CLOSE)
    assert final.timestamp == CASE.steps[-1].timestamp and final.event_id == trace_event_id(sid, 3)
    assert final.ui_state.fields == CASE.steps[-1].state.fields
    # A decider that decides it anyway changes nothing: the session is over.
    driver.handle(executed(final, CLOSE))
    report = driver.report(1.0)
    assert report.ignored_records == {"after_end": 1}
    assert report.steps_executed == 0 and report.steps_deferred == report.steps == 3


def test_without_final_state_the_last_step_publishes_nothing() -> None:
    recorder = Recorder()
    driver = driver_for(recorder)
    driver.start(CASE)
    pump(driver, recorder, lambda s: executed(s, recorded_action(s)))  # type: ignore[arg-type]
    assert [s.state_version for s in recorder.states] == [0, 1, 2]


def test_the_observer_sees_each_checked_decision_once_with_its_session() -> None:
    recorder = Recorder()
    seen: list[tuple[str, int, str]] = []
    driver = SessionDriver(
        recorder,
        config=ReplayConfig(run_id="r1"),
        handling=HANDLING,
        observer=lambda session, record: seen.append((session.case.case_id, session.step, type(record).__name__)),
    )
    driver.start(CASE)
    decide = wrong_then_deferred_then_right(act("lookup", order="B2"))
    pump(driver, recorder, decide)  # type: ignore[arg-type]
    driver.handle(executed(recorder.states[2], CLOSE))  # a duplicate: not seen again
    assert seen == [("c1", 0, "ActionExecuted"), ("c1", 1, "OperatorDeferral"), ("c1", 2, "ActionExecuted")]
