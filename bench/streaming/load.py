"""The load generator: ``UIStateChanged`` records from replayed cases, and a producer that sends
them at a fixed rate or as fast as the pipeline drains."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

EVENT_ID_WIDTH = 16
ROUND_WIDTH = 6


def event_id_for(phase: int, seq: int) -> str:
    return f"{phase:04x}{seq:012x}"


def parse_event_id(event_id: str) -> tuple[int, int]:
    return int(event_id[:4], 16), int(event_id[4:], 16)


class EventSource:
    """UIStateChanged records from replayed Helpdesk cases, made in about a microsecond each.

    Each case state is encoded once with placeholder ``event_id`` and session prefix; a record is
    that template with the placeholders overwritten in place (fixed widths keep the Avro lengths).
    Sessions are interleaved round-robin over a window of open cases, each session's states in
    order, and every replay round gets fresh session ids, so the decide agent decides every record.
    """

    def __init__(self, cases: Sequence[Any], topic: str, window: int = 128) -> None:
        from selective_autonomy.streams.serialization import AvroCodec

        codec = AvroCodec()
        self.templates: list[tuple[bytes, int, int, bytes]] = []
        placeholder_id = "0" * EVENT_ID_WIDTH
        index: dict[tuple[int, int], int] = {}
        for c, case in enumerate(cases):
            for i in range(len(case.steps)):
                event = case.state_event(i)
                session = "0" * ROUND_WIDTH + "-" + case.case_id
                event = event.model_copy(update={"event_id": placeholder_id, "session_id": session})
                value = codec.encode(event, topic)
                id_at = value.index(placeholder_id.encode(), 5)
                session_at = value.index(session.encode(), id_at + EVENT_ID_WIDTH)
                index[(c, i)] = len(self.templates)
                self.templates.append((value, id_at, session_at, ("-" + case.case_id).encode()))
        # Round-robin schedule: `window` cases open at a time, one state of each in turn.
        schedule: list[int] = []
        pending = list(range(len(cases)))[::-1]
        open_cases: list[tuple[int, int]] = []
        while pending or open_cases:
            while pending and len(open_cases) < window:
                open_cases.append((pending.pop(), 0))
            still_open = []
            for c, i in open_cases:
                schedule.append(index[(c, i)])
                if i + 1 < len(cases[c].steps):
                    still_open.append((c, i + 1))
            open_cases = still_open
        self.schedule = schedule
        self.next_round = 0
        self._check(codec)

    def _check(self, codec: Any) -> None:
        from selective_autonomy.schemas.events import UIStateChanged

        for seq in (0, len(self.schedule) - 1, len(self.schedule)):
            key, value = self.record(7, 3, seq)
            event = codec.decode(value, UIStateChanged)
            assert event.event_id == event_id_for(7, seq), event.event_id
            assert event.session_id.encode() == key, (event.session_id, key)

    def record(self, phase: int, first_round: int, seq: int) -> tuple[bytes, bytes]:
        round_, position = divmod(seq, len(self.schedule))
        template, id_at, session_at, suffix = self.templates[self.schedule[position]]
        value = bytearray(template)
        value[id_at : id_at + EVENT_ID_WIDTH] = event_id_for(phase, seq).encode()
        prefix = f"{(first_round + round_) % 16**ROUND_WIDTH:0{ROUND_WIDTH}x}".encode()
        value[session_at : session_at + ROUND_WIDTH] = prefix
        return prefix + suffix, bytes(value)

    def claim_rounds(self, records: int) -> int:
        """The first round of a phase of ``records`` records; later phases get fresh sessions."""
        first = self.next_round
        self.next_round += records // len(self.schedule) + 1
        return first


class LoadGenerator:
    """Sends one phase's records to a topic with a confluent-kafka producer, keyed by session."""

    def __init__(self, settings: Any, source: EventSource, linger_ms: float | None, max_inflight: int) -> None:
        from confluent_kafka import Producer

        from selective_autonomy.streams.kafka_config import confluent_config

        overrides: dict[str, Any] = {}
        if linger_ms is not None:
            overrides["linger.ms"] = linger_ms
        self.producer_config = confluent_config(settings.kafka, "producer", **overrides)
        self.producer = Producer(self.producer_config)
        self.source = source
        self.max_inflight = max_inflight

    def _produce(self, topic: str, key: bytes, value: bytes) -> None:
        while True:
            try:
                self.producer.produce(topic, value=value, key=key)
                return
            except BufferError:
                self.producer.poll(0.01)

    def send(
        self,
        topic: str,
        phase: int,
        rate: float | None,
        duration_s: float,
        send_times: list[float],
        received: Callable[[], int],
        backlog_limit: int | None,
    ) -> tuple[int, float, bool]:
        """Send for ``duration_s``: every record due at ``rate`` events/s, or (``rate`` None) keep
        ``max_inflight`` records outstanding. ``send_times`` gets ``perf_counter()`` just before
        each ``produce()``, by sequence number; ``received()`` counts records out so far. Stops early
        (saturated) once more than ``backlog_limit`` records are outstanding. Returns the records
        sent, the ``perf_counter()`` the sending started at, and whether it saturated."""
        expected = int((rate or 20000.0) * duration_s * 1.2) + 1000
        first_round = self.source.claim_rounds(expected)
        producer, record = self.producer, self.source.record
        saturated = False
        t0 = time.perf_counter()
        end = t0 + duration_s
        seq = 0
        while True:
            now = time.perf_counter()
            if now >= end:
                break
            if backlog_limit is not None and seq - received() > max(backlog_limit, 500):
                saturated = True  # the pipeline fell behind: stop rather than queue for minutes
                break
            # Fixed rate: every record due by now; max rate: keep `max_inflight` records outstanding.
            due = int((now - t0) * rate) + 1 if rate is not None else min(seq + 200, received() + self.max_inflight)
            while seq < due:
                key, value = record(phase, first_round, seq)
                send_times.append(time.perf_counter())
                self._produce(topic, key, value)
                seq += 1
            producer.poll(0)
            if rate is not None:
                pause = t0 + seq / rate - time.perf_counter()
                if pause > 0:
                    time.sleep(min(pause, 0.01))
            elif seq >= due:
                time.sleep(0.0005)
        self.producer.flush(30)
        return seq, t0, saturated

    def close(self) -> None:
        self.producer.flush(10)
        del self.producer
