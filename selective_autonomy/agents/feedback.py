"""The feedback agent: deferrals and operator feedback into the store, and the learning loop.

It consumes ``operator.deferrals`` (the proposal context: state, suggestion, candidates, scores)
and ``copilot.feedback`` (the operator's verdicts and audits), writes both to the feedback store,
and after enough new feedback (or time) runs the learning loop for that process in a background
thread, so retraining never blocks a consumer, let alone the decide path. With it runs the trace
recorder (``agents/traces.py``: every ``ui.state`` into the trace table, in a consumer group of its
own); recorded traces start the first-policy check of a process that has no policy yet. The loop publishes new
model versions and stages through ``models/<process>/current.json``, which every worker hot-reloads,
and each stage change is also emitted on ``stage.changes``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from enum import StrEnum

import faust

from selective_autonomy.agents.dead_letters import DeadLetterRouter
from selective_autonomy.agents.metrics import RuntimeMetrics
from selective_autonomy.agents.traces import TraceRecorder
from selective_autonomy.config import KafkaSettings, TopicSettings
from selective_autonomy.learning.apply import LearningReport
from selective_autonomy.learning.loop import LearningLoop
from selective_autonomy.schemas.events import (
    CopilotFeedback,
    OperatorDeferral,
    StageChanged,
)
from selective_autonomy.store.models import ProposalRecord
from selective_autonomy.store.repository import FeedbackStore
from selective_autonomy.streams.app import raw_topic
from selective_autonomy.streams.producer import EventProducer
from selective_autonomy.streams.serialization import AvroCodec

log = logging.getLogger(__name__)


def proposal_of(deferral: OperatorDeferral) -> ProposalRecord:
    return ProposalRecord.for_deferral(deferral, candidates=deferral.candidates)


ReportListener = Callable[[LearningReport], None]


class Job(StrEnum):
    retrain = "retrain"  # a full run: retrain, recertify, stages (a first policy when none serves)
    watch = "watch"  # the precision monitor only
    # traces arrived: a first policy if none serves and enough cases are recorded; with one serving,
    # the clusters a lifted pause had held in logging go to copilot (LearningLoop.first_policy)
    first_policy = "first_policy"


class RetrainScheduler:
    """Runs the learning loop of each process in a worker thread, one job per process at a time:
    a full run (retrain, recertify) after ``every_feedback`` new records or ``every_s`` with any,
    and in between a monitor-only run at most every ``monitor_every_s`` while feedback arrives, so
    an audit that breaks a certificate demotes its cluster within seconds, not at the next retrain.
    While recorded traces arrive, a first-policy check at most every ``first_policy_every_s``: a
    process with no policy has no feedback to start a run, and the check costs a bounded count
    (a pointer read once a policy serves).

    :param listeners: called with every report, in the learning thread.
    """

    def __init__(
        self,
        loop_factory: Callable[[], LearningLoop],
        every_feedback: int,
        every_s: float,
        monitor_every_s: float = 1.0,
        listeners: list[ReportListener] | None = None,
        first_policy_every_s: float = 10.0,
    ) -> None:
        self.loop_factory = loop_factory
        self.every_feedback = every_feedback
        self.every_s = every_s
        self.monitor_every_s = monitor_every_s
        self.first_policy_every_s = first_policy_every_s
        self.listeners: list[ReportListener] = list(listeners or [])
        self.pending: Counter[str] = Counter()
        self.unwatched: Counter[str] = Counter()
        self.traced: Counter[str] = Counter()
        self.last_run: dict[str, float] = {}
        self.last_watch: dict[str, float] = {}
        self.last_check: dict[str, float] = {}
        self.running: dict[str, Future[LearningReport]] = {}
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="selauto-learning")

    def note(self, process_id: str) -> None:
        self.pending[process_id] += 1
        self.unwatched[process_id] += 1
        self.last_run.setdefault(process_id, time.monotonic())

    def note_traces(self, recorded: Counter[str]) -> None:
        """States of these processes were recorded (counts per process)."""
        self.traced.update(recorded)

    def due(self) -> list[tuple[str, Job]]:
        """(process, job) for each job to start now."""
        now = time.monotonic()
        jobs = []
        for process_id in sorted({*self.pending, *self.traced}):
            if process_id in self.running:
                continue
            count = self.pending[process_id]
            if count > 0 and (count >= self.every_feedback or now - self.last_run.get(process_id, now) >= self.every_s):
                jobs.append((process_id, Job.retrain))
            elif self.unwatched[process_id] > 0 and now - self.last_watch.get(process_id, 0.0) >= self.monitor_every_s:
                jobs.append((process_id, Job.watch))
            elif (
                self.traced[process_id] > 0
                and now - self.last_check.get(process_id, -self.first_policy_every_s) >= self.first_policy_every_s
            ):
                jobs.append((process_id, Job.first_policy))
        return jobs

    def start_due(self) -> list[tuple[str, Job]]:
        started = self.due()
        for process_id, job in started:
            now = time.monotonic()
            if job is Job.first_policy:
                self.traced[process_id] = 0
                self.last_check[process_id] = now
            else:
                self.unwatched[process_id] = 0
                self.last_watch[process_id] = now
            if job is Job.retrain:
                self.pending[process_id] = 0
                self.last_run[process_id] = now
            future = self._executor.submit(self._run, process_id, job)
            self.running[process_id] = future
            future.add_done_callback(self._forget(process_id))
        return started

    def _forget(self, process_id: str) -> Callable[[Future[LearningReport]], None]:
        def done(_future: Future[LearningReport]) -> None:
            self.running.pop(process_id, None)

        return done

    def _run(self, process_id: str, job: Job) -> LearningReport:
        try:
            loop = self.loop_factory()
            if job is Job.first_policy:
                report = loop.first_policy(process_id)
            else:
                report = loop.run(process_id, retrain=job is Job.retrain)
        except Exception:
            log.exception("learning loop for %s failed", process_id)
            if job is Job.first_policy:
                # Traces keep arriving; a training that fails (data the policy cannot learn from)
                # must not run again at every check. The next try comes after ``every_s``.
                self.last_check[process_id] = time.monotonic() + self.every_s - self.first_policy_every_s
            raise
        for listener in self.listeners:
            listener(report)
        return report


class FeedbackAgent:
    def __init__(
        self,
        topics: TopicSettings,
        store: FeedbackStore,
        codec: AvroCodec,
        metrics: RuntimeMetrics,
        scheduler: RetrainScheduler | None = None,
        traces: TraceRecorder | None = None,
    ) -> None:
        self.topics = topics
        self.store = store
        self.codec = codec
        self.metrics = metrics
        self.scheduler = scheduler
        self.traces = traces
        self.proposals = 0
        self.feedback = 0

    def register(self, app: faust.App) -> None:
        topics = self.topics
        router = DeadLetterRouter(self.codec, raw_topic(app, topics.dead_letter))

        @app.agent(raw_topic(app, topics.operator_deferrals), name="record_proposals")
        async def record_proposals(stream: faust.StreamT[bytes]) -> None:
            # noack: faust's own ack runs when the iteration is closed, also for an event whose
            # handling was cancelled (a SIGTERM mid-write); each event is acked once it is stored.
            events = stream.noack()  # type: ignore[attr-defined]
            async for event in events.events():
                deferral = await router.decode(event, OperatorDeferral)
                if deferral is None:
                    self.metrics.on_dead_letter(event.message.topic)
                else:
                    await asyncio.get_running_loop().run_in_executor(
                        None, self.store.record_proposal, proposal_of(deferral)
                    )
                    self.proposals += 1
                await events.ack(event)

        @app.agent(raw_topic(app, topics.copilot_feedback), name="record_feedback")
        async def record_feedback(stream: faust.StreamT[bytes]) -> None:
            events = stream.noack()  # type: ignore[attr-defined]  # acked once stored, as above
            async for event in events.events():
                feedback = await router.decode(event, CopilotFeedback)
                if feedback is None:
                    self.metrics.on_dead_letter(event.message.topic)
                else:
                    await asyncio.get_running_loop().run_in_executor(None, self.store.record_feedback, feedback)
                    self.feedback += 1
                    self.metrics.on_feedback(feedback)
                await events.ack(event)
                if feedback is not None and self.scheduler is not None:
                    self.scheduler.note(feedback.process_id)
                    self.scheduler.start_due()

        if self.traces is not None:
            recorder = self.traces
            if self.scheduler is not None:
                on_traces = self.scheduler

                def traces_recorded(recorded: Counter[str]) -> None:
                    on_traces.note_traces(recorded)
                    on_traces.start_due()

                recorder.on_recorded = traces_recorded

            @app.task  # type: ignore[untyped-decorator]
            async def record_traces() -> None:
                await recorder.run()

        if self.scheduler is not None:
            scheduler = self.scheduler

            # Often enough for the scheduler's shortest period, at most every 5 s.
            interval = min(5.0, scheduler.every_s, scheduler.monitor_every_s, scheduler.first_policy_every_s)

            @app.timer(interval)  # type: ignore[untyped-decorator]
            async def retrain_by_time() -> None:
                scheduler.start_due()


def stage_publisher(
    kafka: KafkaSettings, topics: TopicSettings, codec: AvroCodec
) -> Callable[[list[StageChanged]], None]:
    """Emits stage changes on ``stage.changes`` (from the learning thread).

    :param kafka: the broker the changes go to.
    :param topics: names ``stage.changes``.
    :param codec: the worker's codec.
    """

    def publish(changes: list[StageChanged]) -> None:
        with EventProducer(kafka, codec) as producer:
            for change in changes:
                producer.send(topics.stage_changes, change, key=f"{change.process_id}/{change.business_cluster}")
        for change in changes:
            log.info(
                "stage %s/%s: %s -> %s (%s)",
                change.process_id,
                change.business_cluster,
                change.from_stage.value,
                change.to_stage.value,
                change.reason,
            )

    return publish
