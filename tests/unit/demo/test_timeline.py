"""The from-zero timeline: what the sessions saw, when the learning loop moved, the operators' share."""

from __future__ import annotations

from datetime import timedelta

from selective_autonomy.demo.timeline import Milestone, SessionTracker, build_timeline
from selective_autonomy.learning.apply import LearningReport
from selective_autonomy.learning.calibration import CalibrationReport, CalibrationResult
from selective_autonomy.schemas.event_parts import DeferralReason, Stage
from selective_autonomy.schemas.events import StageChanged
from selective_autonomy.simulator.sessions import SimSession
from selective_autonomy.traces.format import Case
from tests.support.simulator import T0, act, deferred, executed, make_case

STEP = act("lookup", order="A1")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def case_on_day(index: int, day: float) -> Case:
    case = make_case(f"c{index}", [STEP, STEP], [0, 10])
    shift = timedelta(days=day)
    return case.model_copy(
        update={
            "started_at": case.started_at + shift,
            "steps": [s.model_copy(update={"timestamp": s.timestamp + shift}) for s in case.steps],
        }
    )


def live(tracker: SessionTracker, clock: Clock, index: int, day: float, at: float, how: list[Stage]) -> None:
    """One session of two steps, each decided in the stage given (selective: the first executed)."""
    case = case_on_day(index, day)
    session = SimSession(f"sim-live/{case.case_id}", case, waiting_since=0.0)
    clock.now = at
    for step, stage in enumerate(how):
        session.step = step
        state = case.state_event(step).model_copy(update={"session_id": session.session_id})
        if stage is Stage.selective and step == 0:
            tracker(session, executed(state, STEP))
        else:
            reason = {
                Stage.logging: DeferralReason.model_unavailable,
                Stage.copilot: DeferralReason.copilot_stage,
                Stage.selective: DeferralReason.below_threshold,
            }[stage]
            tracker(session, deferred(state, STEP, reason).model_copy(update={"stage": stage}))


def report(*, policy: bool = False, traces: int = 0, coverage: float | None = None, moves: int = 0) -> LearningReport:
    calibration = (
        None
        if coverage is None
        else CalibrationReport(
            target_precision=0.9,
            confidence=0.9,
            min_samples=100,
            results=[
                CalibrationResult(
                    key="billing/retail/critical/lookup",
                    samples=200,
                    positives=190,
                    threshold=0.5 if coverage else None,
                    coverage=coverage,
                )
            ],
        )
    )
    changes = [
        StageChanged(
            process_id="billing",
            business_cluster="retail",
            from_stage=Stage.logging if policy else Stage.copilot,
            to_stage=Stage.copilot if policy else Stage.selective,
            reason="first policy p1 trained on 3 recorded cases" if policy else "certified",
        )
    ][:moves]
    return LearningReport(
        process_id="billing",
        feedback=10,
        critic_examples=200 if coverage is not None else 0,
        critic="confidence",
        critic_version="policy-confidence",
        critic_promoted=False,
        policy_version="p1",
        policy_promoted=policy,
        retrained=True,
        trace_cases=traces,
        calibration=calibration,
        stage_changes=changes,
        notes=["first policy p1 trained on 3 recorded cases"] if policy else [],
    )


def test_the_timeline_reads_each_stage_in_sessions_and_log_days() -> None:
    clock = Clock()
    tracker = SessionTracker(T0, clock=clock)
    live(tracker, clock, 0, 0.0, 1.0, [Stage.logging, Stage.logging])
    live(tracker, clock, 1, 2.0, 2.0, [Stage.logging, Stage.logging])
    live(tracker, clock, 2, 5.0, 4.0, [Stage.logging, Stage.copilot])  # the policy arrived mid-session
    live(tracker, clock, 3, 6.0, 5.0, [Stage.copilot, Stage.copilot])
    live(tracker, clock, 4, 9.0, 7.0, [Stage.selective, Stage.selective])
    live(tracker, clock, 5, 10.0, 8.0, [Stage.selective, Stage.selective])
    reports = [
        (3.5, report(policy=True, traces=3, moves=1)),
        (4.5, report(coverage=0.0)),
        (6.5, report(coverage=0.4, moves=1)),
    ]
    timeline = build_timeline(tracker.sessions(), tracker.first_in_stage, reports, window=2)
    assert [tracker.begun_by(t) for t in (0.5, 3.5, 8.0)] == [0, 2, 6]

    steps = {e.milestone: (e.session, e.log_day, e.wall_s) for e in timeline.entries}
    assert steps == {
        Milestone.logging: (1, 0.0, 1.0),
        Milestone.first_policy: (2, 2.0, 3.5),  # two sessions had begun when the loop published it
        Milestone.copilot: (3, 5.0, 4.0),
        Milestone.first_certificate: (4, 6.0, 6.5),  # the run that certified nothing does not count
        Milestone.selective: (5, 9.0, 7.0),
    }
    assert timeline.reached() == list(Milestone)
    assert timeline.entry(Milestone.first_policy).detail.startswith("first policy p1 trained on 3")
    assert "40.0%" in timeline.entry(Milestone.first_certificate).detail

    # Operators did every step until the gate executed one step in each selective session.
    assert [(p.first_session, p.last_session, p.operator_share, p.stage) for p in timeline.share] == [
        (1, 2, 1.0, "logging"),
        (3, 4, 1.0, "copilot"),
        (5, 6, 0.5, "selective"),
    ]
    assert {k: (v.sessions, v.steps, v.executed, v.deferred) for k, v in timeline.by_stage.items()} == {
        "logging": (3, 5, 0, 5),
        "copilot": (2, 3, 0, 3),
        "selective": (2, 4, 2, 2),
    }
    assert [r.sessions_begun for r in timeline.learning_runs] == [2, 3, 4]
    assert [(m.from_stage, m.to_stage, m.session, m.log_day) for m in timeline.moves] == [
        (Stage.logging, Stage.copilot, 2, 2.0),
        (Stage.copilot, Stage.selective, 4, 6.0),
    ]
    assert timeline.learning_runs[0].stage_changes[0].startswith("retail: logging -> copilot")
    assert timeline.sessions == 6 and timeline.log_days == 10.0


def test_stages_not_reached_say_so() -> None:
    clock = Clock()
    tracker = SessionTracker(T0, clock=clock)
    live(tracker, clock, 0, 0.0, 1.0, [Stage.logging, Stage.logging])
    timeline = build_timeline(tracker.sessions(), tracker.first_in_stage, [], window=50)
    assert timeline.reached() == [Milestone.logging]
    missing = [e for e in timeline.entries if e.session is None]
    assert [e.milestone for e in missing] == list(Milestone)[1:]
    assert all(e.detail == "not reached" and e.log_day is None for e in missing)
