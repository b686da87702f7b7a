"""Shared pieces of the reliability tests: a small process with models, session replays, real
``selauto worker`` subprocesses, and a background reader of the decision topics."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from selective_autonomy.config import Settings
from selective_autonomy.inference.ngram import NGramPolicy
from selective_autonomy.inference.registry import ModelRegistry, ServicePointer
from selective_autonomy.inference.thresholds import Thresholds
from selective_autonomy.schemas.event_parts import Action, ActionTier, Actor, Stage, UIState
from selective_autonomy.schemas.events import (
    ActionExecuted,
    ActionProposed,
    DeadLetter,
    EventModel,
    OperatorDeferral,
    UIStateChanged,
)
from selective_autonomy.schemas.process import (
    ActionSpec,
    ArgumentSpec,
    BusinessCluster,
    Guardrails,
    ProcessSchema,
    UIField,
    ValueType,
)
from selective_autonomy.streams.broker import free_port
from selective_autonomy.streams.kafka_config import confluent_config
from selective_autonomy.streams.producer import EventProducer
from selective_autonomy.streams.serialization import AvroCodec
from selective_autonomy.traces.format import Case, TraceStep

REPO_ROOT = Path(__file__).resolve().parents[3]
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

# -- the process --------------------------------------------------------------------------------

PROCESS = ProcessSchema(
    process_id="billing",
    business_clusters=[
        BusinessCluster(id="retail"),  # selective: every step executes
        BusinessCluster(id="capped", guardrails=Guardrails(max_autonomous_steps=2)),  # selective, 2 steps
        BusinessCluster(id="desk"),  # copilot: every step is deferred
        BusinessCluster(id="lab"),  # logging: proposals only
    ],
    fields=[
        UIField(name="email", pii=True),
        UIField(name="customer_name", pii=True),
        UIField(name="plan", type=ValueType.enum, enum=["basic", "pro"]),
    ],
    controls=[
        ActionSpec(name="lookup_order", tier=ActionTier.auto, arguments=[ArgumentSpec(name="order_id")]),
        ActionSpec(name="send_invoice", tier=ActionTier.critical),
        ActionSpec(
            name="refund",
            tier=ActionTier.approval_required,
            arguments=[ArgumentSpec(name="amount", type=ValueType.number)],
        ),
    ],
)
FLOW = [
    Action(action_type="lookup_order", arguments={"order_id": "A1"}),
    Action(action_type="send_invoice"),
    Action(action_type="transfer_chat", arguments={"queue": "billing"}),
    Action(action_type="close_chat"),
]
STAGES = {"retail": Stage.selective, "capped": Stage.selective, "desk": Stage.copilot, "lab": Stage.logging}
CLUSTERS = tuple(STAGES)


def install_models(models_dir: Path) -> None:
    """An n-gram policy trained on the flow, thresholds 0.5 everywhere, the stages above."""
    registry = ModelRegistry(models_dir)
    registry.save_schema(PROCESS)
    cases = [
        Case(
            case_id=f"train{c}",
            process_id=PROCESS.process_id,
            business_cluster="retail",
            started_at=T0 + timedelta(minutes=c),
            steps=[
                TraceStep(
                    state=UIState(recent_actions=FLOW[:i]),
                    action=action,
                    operator_id="op1",
                    timestamp=T0 + timedelta(minutes=c, seconds=i + 1),
                )
                for i, action in enumerate(FLOW)
            ],
        )
        for c in range(30)
    ]
    policy = NGramPolicy(PROCESS).fit(cases)
    meta = policy.train_meta(cases)
    policy.save(registry.process_dir(PROCESS.process_id) / "policy" / meta.version, meta)
    thresholds = Thresholds(values={f"billing/{c}/{t.value}": 0.5 for c in CLUSTERS for t in ActionTier})
    registry.publish(
        PROCESS.process_id, ServicePointer(policy=f"policy/{meta.version}", thresholds=thresholds, stages=STAGES)
    )


def ui_state(
    session: str,
    version: int,
    cluster: str = "retail",
    actor: Actor = Actor.system,
    fields: dict[str, Any] | None = None,
) -> UIStateChanged:
    return UIStateChanged(
        event_id=f"{session}-v{version}",
        session_id=session,
        process_id=PROCESS.process_id,
        business_cluster=cluster,
        state_version=version,
        actor=actor,
        ui_state=UIState(
            fields=fields if fields is not None else {"plan": "pro"},
            recent_actions=FLOW[: min(version, len(FLOW))],
        ),
    )


def replay(sessions: int, prefix: str = "s") -> list[UIStateChanged]:
    """Every state of ``sessions`` short sessions (one per step of the flow), clusters in turn,
    interleaved across sessions the way concurrent sessions arrive."""
    names = [f"{prefix}{i:04d}" for i in range(sessions)]
    return [
        ui_state(name, version, CLUSTERS[i % len(CLUSTERS)])
        for version in range(len(FLOW))
        for i, name in enumerate(names)
    ]


# -- settings and workers -----------------------------------------------------------------------


def worker_env(settings: Settings, health_port: int) -> dict[str, str]:
    """The environment of a ``selauto worker`` subprocess for ``settings`` (only what differs from
    the defaults matters; SELAUTO_* of the test's own environment are dropped)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SELAUTO_")}
    env.update(
        {
            "SELAUTO_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
            "SELAUTO_KAFKA__PROFILE": settings.kafka.profile.value,
            "SELAUTO_TOPICS__PARTITIONS": str(settings.topics.partitions),
            "SELAUTO_APP_ID": settings.app_id,
            "SELAUTO_DATA_DIR": str(settings.data_dir),
            "SELAUTO_MODELS_DIR": str(settings.models_dir),
            "SELAUTO_WORKER__HEALTH_PORT": str(health_port),
            # The decide path only: the feedback agent and learning loop are not under test here.
            "SELAUTO_WORKER__FEEDBACK": "false",
            "SELAUTO_WORKER__LEARNING": "false",
            "PYTHONUNBUFFERED": "1",
        }
    )
    for role, name in settings.topics.names().items():
        env[f"SELAUTO_TOPICS__{role.upper()}"] = name
    for key in ("session_timeout_ms", "heartbeat_interval_ms"):
        value = getattr(settings.kafka, key)
        if value is not None:
            env[f"SELAUTO_KAFKA__{key.upper()}"] = str(value)
    return env


# A worker process that has done its imports (about 2 s of CPU on this machine kind) and waits for a
# line on stdin before it runs ``selauto worker``: started ahead of time, it joins the group about as
# fast as the faust app starts (see ``WorkerProcess.start(spare=True)``).
SPARE_WORKER = """
import logging, sys, time
from selective_autonomy import cli
import faust, opentelemetry.sdk.trace
import selective_autonomy.agents.worker, selective_autonomy.streams.meters, selective_autonomy.streams.tracing
print(f"==== spare: imports done ({time.process_time():.1f} s of CPU)", flush=True)
for name in sys.stdin.readline().split():  # loggers to turn on at INFO
    logging.getLogger(name).setLevel(logging.INFO)
cli.app(sys.argv[1:], prog_name="selauto")
"""


class WorkerProcess:
    """One ``python -m selective_autonomy.cli worker`` subprocess with its health port and log."""

    def __init__(
        self,
        settings: Settings,
        log_path: Path,
        health_port: int | None = None,
        loglevel: str = "info",
        env: dict[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.env = env or {}
        self.loglevel = loglevel
        self.log_path = log_path
        self.health_port = health_port or free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.spawned_at = 0.0
        self.first_ready_at: float | None = None  # seen by readiness()

    def start(self, spare: bool = False) -> WorkerProcess:
        """Start the worker; with ``spare``, only its imports: :meth:`go` runs the worker."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        worker = ["worker", "--loglevel", self.loglevel]
        command = (
            [sys.executable, "-c", SPARE_WORKER, *worker]
            if spare
            else [sys.executable, "-m", "selective_autonomy.cli", *worker]
        )
        with open(self.log_path, "ab") as log:
            log.write(
                f"\n==== {'spare' if spare else 'start'} {time.strftime('%H:%M:%S')} port {self.health_port}\n".encode()
            )
            log.flush()
            self.process = subprocess.Popen(
                command,
                cwd=REPO_ROOT,
                env=worker_env(self.settings, self.health_port) | self.env,
                stdin=subprocess.PIPE if spare else subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.started_at = self.spawned_at = time.monotonic()
        return self

    def go(self, info_loggers: tuple[str, ...] = ()) -> WorkerProcess:
        """Run the worker in a process started with ``spare=True``, with ``info_loggers`` at INFO."""
        assert self.process is not None and self.process.stdin is not None
        with open(self.log_path, "ab") as log:
            log.write(f"==== go {time.strftime('%H:%M:%S')}\n".encode())
        self.process.stdin.write(" ".join(info_loggers).encode() + b"\n")
        self.process.stdin.close()
        self.started_at = time.monotonic()
        return self

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.process.poll() if self.process is not None else None

    def kill(self) -> None:
        """SIGKILL, as a crash or an OOM kill would."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        if self.process is not None:
            self.process.wait(timeout=10)

    def terminate(self) -> None:
        """SIGTERM without waiting, as Kubernetes does when it rolls a pod."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def wait_exit(self, timeout_s: float) -> int | None:
        if self.process is None:
            return None
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout_s: float = 15.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()

    def _get(self, path: str) -> tuple[int, dict[str, Any]] | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}{path}", timeout=1.0) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")
        except (OSError, ValueError):
            return None

    def healthz(self) -> dict[str, Any] | None:
        answer = self._get("/healthz")
        return answer[1] if answer is not None and answer[0] == 200 else None

    def metrics(self, attempts: int = 20) -> dict[str, Any]:
        """The /healthz metrics; {} when the page does not answer (the process is not up yet)."""
        for _ in range(attempts):
            health = self.healthz()
            if health is not None:
                return dict(health["metrics"])
            if not self.alive:
                break
            time.sleep(0.1)
        return {}

    def ready(self) -> bool:
        answer = self._get("/readyz")
        return answer is not None and answer[0] == 200

    def readyz(self) -> tuple[int, dict[str, Any]] | None:
        """``/readyz``'s status and body; None while the page does not answer."""
        return self._get("/readyz")

    def readiness(self) -> tuple[bool, int] | None:
        """Whether ``/readyz`` says ready, and the group generation of the worker's assignment;
        None while the page does not answer."""
        answer = self._get("/readyz")
        if answer is None:
            return None
        if answer[0] == 200 and self.first_ready_at is None:
            self.first_ready_at = time.monotonic()
        return answer[0] == 200, int(answer[1].get("generation", -1))

    def wait_until(self, check: Callable[[WorkerProcess], bool], timeout_s: float, what: str = "") -> float:
        """Poll ``check`` until it holds; fail with the log's tail if the process dies or time runs out."""
        started = time.monotonic()
        while not check(self):
            if not self.alive:
                raise AssertionError(f"worker exited ({self.returncode}) waiting for {what}\n{self.log_tail()}")
            if time.monotonic() - started > timeout_s:
                raise AssertionError(f"timed out after {timeout_s} s waiting for {what}\n{self.log_tail()}")
            time.sleep(0.1)
        return time.monotonic() - started

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def decided_count(worker: WorkerProcess) -> int:
    outcomes = worker.metrics().get("outcomes", {})
    return int(sum(outcomes.values()))


# -- reading the decisions back -----------------------------------------------------------------


@dataclass(frozen=True)
class DecisionRecord:
    kind: str  # executed | deferred | proposed
    record_id: str  # action_id, or deferral_id for deferrals
    session_id: str
    state_version: int
    at: float = 0.0  # the record's timestamp (set by its producer), in seconds
    partition: int = -1
    offset: int = -1


class TopicCollector:
    """Reads the decision topics (and the dead-letter topic) from the beginning in a background
    thread, with no consumer group, and keeps every record it decodes."""

    def __init__(self, settings: Settings) -> None:
        topics = settings.topics
        self.models: dict[str, tuple[str, type[EventModel]]] = {
            topics.actions_executed: ("executed", ActionExecuted),
            topics.operator_deferrals: ("deferred", OperatorDeferral),
            topics.actions_proposed: ("proposed", ActionProposed),
            topics.dead_letter: ("dead", DeadLetter),
        }
        self.codec = AvroCodec(settings.wire_format)
        conf = confluent_config(
            settings.kafka,
            "consumer",
            **{"group.id": "reliability-reader", "enable.auto.commit": False, "enable.partition.eof": False},
        )
        self._consumer = Consumer(conf)
        metadata = self._consumer.list_topics(timeout=10)
        # A second client for the ends of the topics, queried from the test's thread.
        self._ends = Consumer(confluent_config(settings.kafka, "consumer", **{"group.id": "reliability-ends"}))
        self._partitions = {topic: sorted(metadata.topics[topic].partitions) for topic in self.models}
        partitions = [
            TopicPartition(topic, p, OFFSET_BEGINNING)
            for topic in self.models
            for p in metadata.topics[topic].partitions
        ]
        self._consumer.assign(partitions)
        self.records: list[DecisionRecord] = []
        self.dead_letters: list[DeadLetter] = []
        self.undecodable = 0
        self._read_until: dict[tuple[str, int], int] = {}  # (topic, partition) -> next offset to read
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="topic-collector", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for message in self._consumer.consume(500, timeout=0.2):
                if message.error() is not None:
                    continue
                kind, model = self.models[message.topic() or ""]
                at = message.timestamp()[1] / 1000.0
                where = (message.partition() or 0, message.offset() or 0)
                with self._lock:
                    self._read_until[(message.topic() or "", where[0])] = where[1] + 1
                try:
                    event = self.codec.decode(message.value(), model)
                except Exception:
                    with self._lock:
                        self.undecodable += 1
                    continue
                with self._lock:
                    if isinstance(event, DeadLetter):
                        self.dead_letters.append(event)
                    elif isinstance(event, OperatorDeferral):
                        self.records.append(
                            DecisionRecord(kind, event.deferral_id, event.session_id, event.state_version, at, *where)
                        )
                    elif isinstance(event, ActionExecuted | ActionProposed):
                        record = DecisionRecord(
                            kind, event.action_id, event.session_id, event.state_version, at, *where
                        )
                        self.records.append(record)

    def snapshot(self) -> tuple[list[DecisionRecord], list[DeadLetter]]:
        with self._lock:
            return list(self.records), list(self.dead_letters)

    def by_state(self) -> dict[tuple[str, int], set[tuple[str, str]]]:
        """(session, state version) -> the distinct (kind, id) decided for it."""
        out: dict[tuple[str, int], set[tuple[str, str]]] = defaultdict(set)
        for record in self.snapshot()[0]:
            out[(record.session_id, record.state_version)].add((record.kind, record.record_id))
        return out

    def wait_for(self, check: Callable[[TopicCollector], bool], timeout_s: float, what: str = "") -> float:
        started = time.monotonic()
        while not check(self):
            if time.monotonic() - started > timeout_s:
                raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
            time.sleep(0.1)
        return time.monotonic() - started

    def caught_up(self) -> bool:
        """Whether every record on the topics so far has been read: ``covers`` can hold while a
        repeated record on another partition is still unread, and a later snapshot would count it."""
        ends = {
            (topic, p): self._ends.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for topic in self.models
            for p in self._partitions[topic]
        }
        with self._lock:
            return all(self._read_until.get(tp, 0) >= end for tp, end in ends.items())

    def covers(self, states: Iterable[tuple[str, int]]) -> bool:
        decided = self.by_state()
        return all(key in decided for key in states)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._consumer.close()
        self._ends.close()

    def __enter__(self) -> TopicCollector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def produce(settings: Settings, states: Iterable[UIStateChanged]) -> int:
    """Produce ``states`` to ``ui.state`` keyed by session; returns how many."""
    count = 0
    with EventProducer(settings) as producer:
        for state in states:
            producer.send(settings.topics.ui_state, state, key=state.session_id)
            count += 1
    return count


def _committed_and_ends(settings: Settings) -> tuple[list[TopicPartition], list[int]]:
    """The decide group's committed offsets on ui.state, and each partition's end (high watermark)."""
    consumer = Consumer(confluent_config(settings.kafka, "consumer", **{"group.id": settings.app_id}))
    try:
        partitions = [TopicPartition(settings.topics.ui_state, p) for p in range(settings.topics.partitions)]
        committed = consumer.committed(partitions, timeout=10)
        return committed, [consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in partitions]
    finally:
        consumer.close()


def committed_vs_end(settings: Settings) -> str:
    """The decide group's committed offsets against the ends of ui.state, for a failure message."""
    committed, ends = _committed_and_ends(settings)
    pairs = zip(committed, ends, strict=True)
    return "ui.state " + ", ".join(f"[{tp.partition}] committed {tp.offset} of {end}" for tp, end in pairs)


def readable_after_committed(settings: Settings, wait_s: float = 3.0) -> str:
    """How many ui.state records fresh consumers read past the group's committed offsets, with each
    isolation level: tells a worker that stopped fetching from a broker that stopped serving (faust
    reads uncommitted, librdkafka's default is committed), for a failure message."""
    committed, _ = _committed_and_ends(settings)
    found = []
    for isolation in ("read_uncommitted", "read_committed"):
        conf = {"group.id": "diagnostics-reader", "enable.auto.commit": False, "isolation.level": isolation}
        reader = Consumer(confluent_config(settings.kafka, "consumer", **conf))
        try:
            reader.assign([TopicPartition(tp.topic, tp.partition, max(tp.offset, 0)) for tp in committed])
            seen: dict[int, int] = defaultdict(int)
            deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline:
                for message in reader.consume(500, timeout=0.2):
                    if message.error() is None:
                        seen[message.partition() or 0] += 1
            counts = ", ".join(f"[{tp.partition}] {seen[tp.partition]} from {tp.offset}" for tp in committed)
            found.append(f"{isolation}: {counts}")
        finally:
            reader.close()
    return "readable past the committed offsets: " + "; ".join(found)


def produce_paced(settings: Settings, states: list[UIStateChanged], per_s: float) -> None:
    """Produce ``states`` as a live stream of ``per_s`` states a second."""
    with EventProducer(settings) as producer:
        started = time.monotonic()
        for index, state in enumerate(states):
            time.sleep(max(0.0, started + index / per_s - time.monotonic()))
            producer.send(settings.topics.ui_state, state, key=state.session_id)


def expected_kind(cluster: str, version: int) -> str:
    """The one record each state of the replay must get, from its cluster's stage and guardrails."""
    if STAGES[cluster] is Stage.logging:
        return "proposed"
    if STAGES[cluster] is Stage.copilot:
        return "deferred"
    if cluster == "capped" and version >= 2:
        return "deferred"  # the guardrail: two unattended steps per session, counted in the session table
    return "executed"
