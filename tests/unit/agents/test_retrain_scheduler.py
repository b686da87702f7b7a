"""Which learning job the scheduler starts: feedback retrains and watches; recorded traces check for a
first policy, at most every ``first_policy_every_s``."""

from __future__ import annotations

import threading
import time
from collections import Counter

from selective_autonomy.agents.feedback import Job, RetrainScheduler
from selective_autonomy.learning.apply import LearningReport


class FakeLoop:
    def __init__(self, calls: list[tuple[str, str]], release: threading.Event) -> None:
        self.calls = calls
        self.release = release

    def _report(self, process_id: str, retrained: bool) -> LearningReport:
        self.release.wait(10)
        return LearningReport(
            process_id=process_id,
            feedback=0,
            critic_examples=0,
            critic="unchanged",
            critic_version="",
            critic_promoted=False,
            policy_version="",
            policy_promoted=False,
            retrained=retrained,
        )

    def run(self, process_id: str, *, retrain: bool = True) -> LearningReport:
        self.calls.append((process_id, "retrain" if retrain else "watch"))
        return self._report(process_id, retrain)

    def first_policy(self, process_id: str) -> LearningReport:
        self.calls.append((process_id, "first_policy"))
        if process_id == "broken":
            raise ValueError("nothing to learn from")
        return self._report(process_id, False)


def scheduler(calls: list[tuple[str, str]], release: threading.Event, first_policy_every_s: float) -> RetrainScheduler:
    return RetrainScheduler(
        lambda: FakeLoop(calls, release),  # type: ignore[arg-type,return-value]
        every_feedback=2,
        every_s=3600,
        monitor_every_s=3600,
        first_policy_every_s=first_policy_every_s,
    )


def wait_idle(jobs: RetrainScheduler) -> None:
    """Until every job is done and forgotten (the done callback may run just after result() returns)."""
    deadline = time.monotonic() + 10
    while jobs.running and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not jobs.running


def test_traces_start_a_first_policy_check_at_most_every_interval() -> None:
    calls: list[tuple[str, str]] = []
    release = threading.Event()
    jobs = scheduler(calls, release, first_policy_every_s=3600)
    assert jobs.start_due() == []
    jobs.note_traces(Counter({"billing": 5, "refunds": 1}))
    assert jobs.start_due() == [("billing", Job.first_policy), ("refunds", Job.first_policy)]
    jobs.note_traces(Counter({"billing": 3}))
    assert jobs.start_due() == []  # one job per process at a time, and the interval has not passed
    release.set()
    wait_idle(jobs)
    assert jobs.start_due() == []
    assert sorted(calls) == [("billing", "first_policy"), ("refunds", "first_policy")]


def test_feedback_comes_first_and_traces_are_checked_again_after_the_interval() -> None:
    calls: list[tuple[str, str]] = []
    release = threading.Event()
    release.set()
    jobs = scheduler(calls, release, first_policy_every_s=0.0)
    jobs.note("billing")
    jobs.note("billing")
    jobs.note_traces(Counter({"billing": 1}))
    assert jobs.start_due() == [("billing", Job.retrain)]
    wait_idle(jobs)
    assert jobs.start_due() == [("billing", Job.first_policy)]
    wait_idle(jobs)
    assert jobs.start_due() == []  # nothing new recorded
    jobs.note_traces(Counter({"billing": 1}))
    assert jobs.start_due() == [("billing", Job.first_policy)]
    wait_idle(jobs)
    assert calls == [("billing", "retrain"), ("billing", "first_policy"), ("billing", "first_policy")]


def test_a_failed_first_policy_is_tried_again_only_after_the_retrain_interval() -> None:
    calls: list[tuple[str, str]] = []
    release = threading.Event()
    release.set()
    jobs = scheduler(calls, release, first_policy_every_s=0.0)
    jobs.note_traces(Counter({"broken": 1}))
    assert jobs.start_due() == [("broken", Job.first_policy)]
    wait_idle(jobs)
    jobs.note_traces(Counter({"broken": 1}))
    assert jobs.start_due() == []  # every_s (an hour here) must pass first
    assert calls == [("broken", "first_policy")]
