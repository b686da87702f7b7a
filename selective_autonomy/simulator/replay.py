"""Replay held-out cases as live, concurrent sessions through the real broker.

:func:`replay_cases` keeps ``concurrency`` sessions in flight. Each session starts by publishing
its case's first state on ``ui.state`` (keyed by session id); the decide agent answers on
``actions.executed`` or ``operator.deferrals``; a :class:`DecisionReader` reads both and hands each
decision to the :class:`~selective_autonomy.simulator.sessions.SessionDriver`, which checks it
against the recorded case, answers deferrals as the simulated operator (``CopilotFeedback`` on
``copilot.feedback``, then the operator's next ``UIStateChanged``) and publishes the next state.
Sessions follow their recorded trajectory; see :mod:`selective_autonomy.simulator.sessions`.

A session that gets no decision within ``decision_timeout_s`` is reported as stalled, so a replay
always ends, whether or not a worker is running. Works in every stage: in ``copilot`` every step
is a deferral, so a replay collects one feedback per step.

Session ids are ``sim-<run_id>/<case_id>``, and the reader starts at the current end of both
topics, so a replay against shared topics neither collides with nor reads earlier runs.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable

from confluent_kafka import Consumer, KafkaError, TopicPartition
from tqdm import tqdm

from selective_autonomy.closing import ClosedOnExit
from selective_autonomy.config import Settings, TopicSettings
from selective_autonomy.errors import BrokerError, DecodeError
from selective_autonomy.schemas.events import ActionExecuted, CopilotFeedback, OperatorDeferral, UIStateChanged
from selective_autonomy.simulator.operator_model import HandlingTimeModel, OperatorModel
from selective_autonomy.simulator.report import ReplayReport
from selective_autonomy.simulator.sessions import DecisionObserver, DecisionRecord, ReplayConfig, SessionDriver
from selective_autonomy.streams.kafka_config import confluent_config
from selective_autonomy.streams.producer import EventProducer
from selective_autonomy.streams.serialization import AvroCodec, codec_for
from selective_autonomy.traces.format import Case

__all__ = ["DecisionReader", "KafkaPublisher", "ReplayConfig", "ReplayReport", "pacing", "replay_cases"]


class DecisionReader(ClosedOnExit):
    """Reads ``ActionExecuted`` and ``OperatorDeferral`` records from both decision topics.

    No consumer group (nothing to join, nothing committed): every partition is assigned at its
    high watermark as of construction, so only records produced afterwards are read. A broker that
    reports a low watermark (Tansu after multi-record batches) makes it re-read a few older records,
    which the driver ignores as foreign sessions.
    """

    def __init__(self, settings: Settings, codec: AvroCodec | None = None, timeout_s: float = 10.0) -> None:
        topics = settings.topics
        self.models: dict[str, type[ActionExecuted] | type[OperatorDeferral]] = {
            topics.actions_executed: ActionExecuted,
            topics.operator_deferrals: OperatorDeferral,
        }
        self.codec = codec or codec_for(settings)
        self.undecodable: Counter[str] = Counter()
        conf = confluent_config(
            settings.kafka,
            "consumer",
            **{
                "group.id": f"selauto-sim-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "enable.partition.eof": False,
                "auto.offset.reset": "earliest",
            },
        )
        self._consumer = Consumer(conf)
        try:
            self._consumer.assign(self._partitions_at_end(timeout_s))
        except BaseException:
            self._consumer.close()
            raise

    def _partitions_at_end(self, timeout_s: float) -> list[TopicPartition]:
        metadata = self._consumer.list_topics(timeout=timeout_s)
        assigned: list[TopicPartition] = []
        for topic in self.models:
            if topic not in metadata.topics:
                raise BrokerError(f"topic {topic} does not exist")
            for partition in metadata.topics[topic].partitions:
                marks = self._consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout_s)
                if marks is None:
                    raise BrokerError(f"no offsets for {topic}[{partition}] within {timeout_s} s")
                assigned.append(TopicPartition(topic, partition, marks[1]))
        return assigned

    def poll(self, timeout_s: float, max_records: int = 500) -> list[DecisionRecord]:
        """Decisions that arrive within ``timeout_s`` (at most ``max_records``); undecodable ones are counted."""
        out: list[DecisionRecord] = []
        for message in self._consumer.consume(max_records, timeout_s):
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    continue
                raise BrokerError(f"consume failed: {error}")
            model = self.models.get(message.topic() or "")
            if model is None:
                continue
            try:
                out.append(self.codec.decode(message.value(), model))
            except DecodeError:
                self.undecodable[message.topic() or ""] += 1
        return out

    def close(self) -> None:
        self._consumer.close()


class KafkaPublisher:
    """The BPM and the operator console of the simulation: states and feedback, keyed by session."""

    def __init__(self, topics: TopicSettings, producer: EventProducer) -> None:
        self.topics = topics
        self.producer = producer

    def state(self, event: UIStateChanged) -> None:
        self.producer.send(self.topics.ui_state, event, key=event.session_id)

    def feedback(self, event: CopilotFeedback) -> None:
        self.producer.send(self.topics.copilot_feedback, event, key=event.session_id)


def replay_cases(
    settings: Settings,
    cases: Iterable[Case],
    *,
    config: ReplayConfig | None = None,
    operator: OperatorModel | None = None,
    handling: HandlingTimeModel | None = None,
    observer: DecisionObserver | None = None,
) -> ReplayReport:
    """Replay ``cases`` as live sessions against whatever decide agent serves ``settings``' topics.

    Cases without steps are skipped. Blocks until every session completed or stalled. Sessions
    start in the order given (paced by their start in log time when ``config.day_s`` is set).

    :param config: concurrency, stall timeout, run id, pacing (default :class:`ReplayConfig`).
    :param operator: the simulated operator (default: exact, noiseless, no alternatives).
    :param handling: operator time per step; default: estimated from the replayed cases themselves
        (pass one estimated from the training cases for an honest held-out figure).
    :param observer: called with each checked decision and its session (default: nobody).
    :raises BrokerError: if the topics are missing or records cannot be delivered.
    """
    config = config or ReplayConfig()
    todo = [case for case in cases if case.steps]
    handling = handling or HandlingTimeModel.from_cases(todo)
    pending = deque(todo)
    started = time.monotonic()
    due = pacing(todo, config.day_s, started)
    with (
        DecisionReader(settings) as reader,
        EventProducer(settings) as producer,
        tqdm(total=len(todo), unit="session", desc="replay", disable=not config.progress) as bar,
    ):
        driver = SessionDriver(
            KafkaPublisher(settings.topics, producer),
            config=config,
            operator=operator,
            handling=handling,
            observer=observer,
        )
        while pending or driver.active:
            while pending and driver.active < config.concurrency and due(pending[0]) <= time.monotonic():
                driver.start(pending.popleft())
            producer.flush()
            for record in reader.poll(config.poll_s):
                driver.handle(record)
            driver.expire()
            bar.update(driver.finished - bar.n)
        producer.flush()
        for topic, count in reader.undecodable.items():
            driver.tally.ignored[f"undecodable:{topic}"] += count
    return driver.report(time.monotonic() - started)


def pacing(cases: list[Case], day_s: float | None, started: float) -> Callable[[Case], float]:
    """When (monotonic seconds) each case may start: at once, or at its log time compressed to ``day_s``
    wall seconds per day, counted from the earliest case."""
    if day_s is None or not cases:
        return lambda _case: started
    origin = min(case.started_at for case in cases)
    return lambda case: started + (case.started_at - origin).total_seconds() / 86_400.0 * day_s
