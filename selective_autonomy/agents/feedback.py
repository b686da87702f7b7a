"""The feedback agent: deferrals and operator feedback into the store, and the learning loop.

It consumes ``operator.deferrals`` (the proposal context: state, suggestion, candidates, scores)
and ``copilot.feedback`` (the operator's verdicts and audits), writes both to the feedback store,
and after enough new feedback (or time) runs the learning loop for that process in a background
thread, so retraining never blocks a consumer, let alone the decide path. The loop publishes new
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

import faust

from selective_autonomy.agents.dead_letters import DeadLetterRouter
from selective_autonomy.agents.metrics import RuntimeMetrics
from selective_autonomy.config import Settings
from selective_autonomy.inference.learning import LearningLoop, LearningReport
from selective_autonomy.inference.protocol import Candidate
from selective_autonomy.schemas.events import (
    CopilotFeedback,
    DeferralReason,
    OperatorDeferral,
    Stage,
    UIStateChanged,
)
from selective_autonomy.store.models import ProposalRecord
from selective_autonomy.store.repository import FeedbackStore
from selective_autonomy.streams.app import raw_topic
from selective_autonomy.streams.producer import EventProducer
from selective_autonomy.streams.serialization import AvroCodec

log = logging.getLogger(__name__)


def state_of(deferral: OperatorDeferral) -> UIStateChanged:
    """The state a deferral answers, rebuilt from what the deferral carries."""
    return UIStateChanged(
        event_id=deferral.event_id,
        session_id=deferral.session_id,
        process_id=deferral.process_id,
        business_cluster=deferral.business_cluster,
        state_version=deferral.state_version,
        timestamp=deferral.deferred_at,
        ui_state=deferral.ui_state,
    )


def proposal_of(deferral: OperatorDeferral) -> ProposalRecord:
    stage = Stage.copilot if deferral.reason is DeferralReason.copilot_stage else Stage.selective
    candidates = [Candidate(action=c.action, probability=c.probability) for c in deferral.candidates]
    return ProposalRecord.for_deferral(deferral, state_of(deferral), stage=stage, candidates=candidates)


class RetrainScheduler:
    """Counts new feedback per process and runs the learning loop by count or time, one job per
    process at a time, in a worker thread."""

    def __init__(
        self,
        loop_factory: Callable[[], LearningLoop],
        every_feedback: int,
        every_s: float,
        on_report: Callable[[LearningReport], None],
    ) -> None:
        self.loop_factory = loop_factory
        self.every_feedback = every_feedback
        self.every_s = every_s
        self.on_report = on_report
        self.pending: Counter[str] = Counter()
        self.last_run: dict[str, float] = {}
        self.running: dict[str, Future[LearningReport]] = {}
        self.reports: list[LearningReport] = []
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="selauto-learning")

    def note(self, process_id: str) -> None:
        self.pending[process_id] += 1
        self.last_run.setdefault(process_id, time.monotonic())

    def due(self) -> list[str]:
        now = time.monotonic()
        return [
            process_id
            for process_id, count in self.pending.items()
            if count > 0
            and process_id not in self.running
            and (count >= self.every_feedback or now - self.last_run.get(process_id, now) >= self.every_s)
        ]

    def start_due(self) -> list[str]:
        started = self.due()
        for process_id in started:
            self.pending[process_id] = 0
            self.last_run[process_id] = time.monotonic()
            future = self._executor.submit(self._run, process_id)
            self.running[process_id] = future
            future.add_done_callback(self._forget(process_id))
        return started

    def _forget(self, process_id: str) -> Callable[[Future[LearningReport]], None]:
        def done(_future: Future[LearningReport]) -> None:
            self.running.pop(process_id, None)

        return done

    def _run(self, process_id: str) -> LearningReport:
        try:
            report = self.loop_factory().run(process_id)
        except Exception:
            log.exception("learning loop for %s failed", process_id)
            raise
        self.reports.append(report)
        self.on_report(report)
        return report

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True)


class FeedbackAgent:
    def __init__(
        self,
        settings: Settings,
        store: FeedbackStore,
        codec: AvroCodec,
        metrics: RuntimeMetrics,
        scheduler: RetrainScheduler | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.codec = codec
        self.metrics = metrics
        self.scheduler = scheduler
        self.proposals = 0
        self.feedback = 0

    def register(self, app: faust.App) -> None:
        topics = self.settings.topics
        router = DeadLetterRouter(self.codec, raw_topic(app, topics.dead_letter))

        @app.agent(raw_topic(app, topics.operator_deferrals), name="record_proposals")
        async def record_proposals(stream: faust.StreamT[bytes]) -> None:
            async for event in stream.events():
                deferral = await router.decode(event, OperatorDeferral)
                if deferral is None:
                    self.metrics.on_dead_letter(event.message.topic)
                    continue
                await asyncio.get_running_loop().run_in_executor(
                    None, self.store.record_proposal, proposal_of(deferral)
                )
                self.proposals += 1

        @app.agent(raw_topic(app, topics.copilot_feedback), name="record_feedback")
        async def record_feedback(stream: faust.StreamT[bytes]) -> None:
            async for event in stream.events():
                feedback = await router.decode(event, CopilotFeedback)
                if feedback is None:
                    self.metrics.on_dead_letter(event.message.topic)
                    continue
                await asyncio.get_running_loop().run_in_executor(None, self.store.record_feedback, feedback)
                self.feedback += 1
                self.metrics.feedback[feedback.verdict.value] += 1
                if self.scheduler is not None:
                    self.scheduler.note(feedback.process_id)
                    self.scheduler.start_due()

        if self.scheduler is not None:
            scheduler = self.scheduler

            @app.timer(min(5.0, self.settings.learning.retrain_every_s))  # type: ignore[untyped-decorator]
            async def retrain_by_time() -> None:
                scheduler.start_due()


def stage_publisher(settings: Settings) -> Callable[[LearningReport], None]:
    """Emits a report's stage changes on ``stage.changes`` (from the learning thread)."""

    def publish(report: LearningReport) -> None:
        if not report.stage_changes:
            return
        with EventProducer(settings) as producer:
            for change in report.stage_changes:
                producer.send(
                    settings.topics.stage_changes, change, key=f"{change.process_id}/{change.business_cluster}"
                )
        for change in report.stage_changes:
            log.info(
                "stage %s/%s: %s -> %s (%s)",
                change.process_id,
                change.business_cluster,
                change.from_stage.value,
                change.to_stage.value,
                change.reason,
            )

    return publish
