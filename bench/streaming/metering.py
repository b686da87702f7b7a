"""Measuring: the consumer that times every output record, latency percentiles, and the CPU time
and memory of the processes involved, read from ``/proc``."""

from __future__ import annotations

import io
import math
import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.streaming.load import parse_event_id


class EventIdReader:
    """Reads ``event_id`` out of a Confluent-framed Avro record without decoding the rest.

    The fields before ``event_id`` in every contract record carrying it are ints and strings, so
    skipping them is a few varint reads; anything else falls back to a full fastavro decode.
    """

    def __init__(self) -> None:
        from selective_autonomy.streams.schema_ids import PackageSchemaIds

        self.resolver = PackageSchemaIds()
        self._plans: dict[int, tuple[list[str] | None, Any]] = {}

    def _plan(self, schema_id: int) -> tuple[list[str] | None, Any]:
        if schema_id not in self._plans:
            _, writer = self.resolver.writer_schema(schema_id)
            kinds: list[str] | None = []
            for f in writer["fields"]:
                if f["name"] == "event_id":
                    break
                kind = f["type"] if isinstance(f["type"], str) else None
                if kind not in ("int", "long", "string"):
                    kinds = None
                    break
                assert kinds is not None
                kinds.append(kind)
            self._plans[schema_id] = (kinds, writer)
        return self._plans[schema_id]

    @staticmethod
    def _varint(data: bytes, pos: int) -> tuple[int, int]:
        shift = result = 0
        while True:
            byte = data[pos]
            pos += 1
            result |= (byte & 0x7F) << shift
            if byte < 0x80:
                return (result >> 1) ^ -(result & 1), pos
            shift += 7

    def event_id(self, data: bytes) -> str:
        schema_id = int.from_bytes(data[1:5], "big")
        kinds, writer = self._plan(schema_id)
        if kinds is None:
            import fastavro

            return str(fastavro.schemaless_reader(io.BytesIO(data[5:]), writer, None)["event_id"])  # type: ignore[call-overload,index]
        pos = 5
        for kind in kinds:
            value, pos = self._varint(data, pos)
            if kind == "string":
                pos += value
        length, pos = self._varint(data, pos)
        return data[pos : pos + length].decode()


@dataclass
class PhaseLog:
    send: list[float] = field(default_factory=list)
    """perf_counter() just before each produce(), by sequence number."""
    latency: list[float] = field(default_factory=list)
    received_at: list[float] = field(default_factory=list)
    seen: set[int] = field(default_factory=set)
    duplicates: int = 0
    by_topic: Counter[str] = field(default_factory=Counter)


class Meter:
    """The measuring consumer: a thread that polls the output topics and times each record."""

    def __init__(self, settings: Any, topics: Sequence[str]) -> None:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        from selective_autonomy.streams.kafka_config import confluent_config

        conf = confluent_config(
            settings.kafka,
            "consumer",
            **{"group.id": f"bench-meter-{uuid.uuid4().hex[:8]}", "enable.auto.commit": False},
        )
        self.consumer = Consumer(conf)
        metadata = self.consumer.list_topics(timeout=10)
        self.consumer.assign(
            [TopicPartition(t, p, OFFSET_BEGINNING) for t in topics for p in metadata.topics[t].partitions]
        )
        self.phases: dict[int, PhaseLog] = {}
        self.unknown = 0
        self.reader = EventIdReader()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="meter", daemon=True)
        self._thread.start()

    def phase(self, phase: int) -> PhaseLog:
        return self.phases.setdefault(phase, PhaseLog())

    def _run(self) -> None:
        reader = self.reader
        while not self._stop.is_set():
            # poll() returns as soon as one record is there (consume() would wait out its timeout
            # unless the whole batch is there); then take whatever else is already fetched.
            first = self.consumer.poll(0.05)
            if first is None:
                continue
            now = time.perf_counter()
            messages = [first, *self.consumer.consume(num_messages=1000, timeout=0)]
            for message in messages:
                if message.error() is not None:
                    continue
                try:
                    phase, seq = parse_event_id(reader.event_id(message.value()))
                except Exception:
                    self.unknown += 1
                    continue
                plog = self.phases.get(phase)
                if plog is None or seq >= len(plog.send):
                    self.unknown += 1
                    continue
                if seq in plog.seen:
                    plog.duplicates += 1
                    continue
                plog.seen.add(seq)
                plog.latency.append(now - plog.send[seq])
                plog.received_at.append(now)
                plog.by_topic[message.topic()] += 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.consumer.close()


def percentiles(values: Sequence[float]) -> dict[str, float | None]:
    import numpy as np

    if not values:
        return {"p50_ms": None, "p95_ms": None, "p99_ms": None, "max_ms": None, "mean_ms": None}
    array = np.asarray(values) * 1000.0
    p50, p95, p99 = np.percentile(array, [50, 95, 99])
    return {
        "p50_ms": round(float(p50), 3),
        "p95_ms": round(float(p95), 3),
        "p99_ms": round(float(p99), 3),
        "max_ms": round(float(array.max()), 3),
        "mean_ms": round(float(array.mean()), 3),
    }


def latency_by_second(received_at: Sequence[float], latency: Sequence[float]) -> list[list[float]]:
    """``[second, records, p50 ms, p99 ms]`` for each second of a phase, by arrival time: shows
    whether latency drifts within a phase (the embedded broker's does as its log grows)."""
    import numpy as np

    if not received_at:
        return []
    arrived = np.asarray(received_at)
    values = np.asarray(latency) * 1000.0
    seconds = np.floor(arrived - arrived[0]).astype(int)
    rows = []
    for second in range(int(seconds.max()) + 1):
        inside = values[seconds == second]
        if len(inside):
            p50, p99 = np.percentile(inside, [50, 99])
            rows.append([second, len(inside), round(float(p50), 1), round(float(p99), 1)])
    return rows


def system_busy_seconds() -> float:
    """CPU seconds all processes on the machine have used (busy = not idle, not iowait)."""
    try:
        ticks = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return math.nan


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads) from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return math.nan


def rss_mb(pid: int) -> dict[str, float | None]:
    """Resident memory of a process now and at its peak (VmRSS, VmHWM), in MiB."""
    out: dict[str, float | None] = {"rss_mb": None, "peak_rss_mb": None}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                out["rss_mb" if name == "VmRSS" else "peak_rss_mb"] = round(int(value.split()[0]) / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    return out


def load_average() -> list[float]:
    """The machine's 1, 5 and 15 minute load averages."""
    return [round(v, 2) for v in os.getloadavg()]


class CpuWindow:
    """CPU cores used by some processes, this one and everything else on the machine over a window."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.started = time.perf_counter()
        self.before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        self.own_before = sum(os.times()[:2])
        self.system_before = system_busy_seconds()

    def seconds(self) -> dict[str, float]:
        """CPU seconds each process used since the window started."""
        return {name: cpu_seconds(pid) - self.before[name] for name, pid in self.pids.items()}

    def cores(self, own: str = "bench (producer+meter)") -> dict[str, float]:
        wall = time.perf_counter() - self.started
        cpu = {name: round(seconds / wall, 3) for name, seconds in self.seconds().items()}
        cpu[own] = round((sum(os.times()[:2]) - self.own_before) / wall, 3)
        # Everything else on the machine in the meantime (other users' jobs skew the timings).
        cpu["other processes"] = round(
            max(0.0, (system_busy_seconds() - self.system_before) / wall - sum(cpu.values())), 3
        )
        return cpu


def others_cores(pids: dict[str, int], window_s: float = 1.0) -> float:
    """Cores that processes other than ``pids`` and this one used over the next ``window_s``."""
    window = CpuWindow(pids)
    time.sleep(window_s)
    return window.cores()["other processes"]
