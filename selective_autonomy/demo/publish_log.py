"""Publish an event log's cases as ``UIStateChanged`` events and consume them back through a faust
agent: the smallest end-to-end run of the contracts on a real broker."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from selective_autonomy.agents.tally import UIStateTally, register_tally_agent
from selective_autonomy.config import Settings
from selective_autonomy.streams.app import build_app
from selective_autonomy.streams.producer import EventProducer
from selective_autonomy.streams.runner import run_app_until
from selective_autonomy.streams.serialization import codec_for
from selective_autonomy.traces.eventlog import iter_cases, read_event_log
from selective_autonomy.traces.mapping import load_mapping


@dataclass(frozen=True)
class PublishReport:
    cases: int
    events_published: int
    events_consumed: int
    dead_letters: int
    sessions_seen: int
    publish_s: float
    consume_s: float


def publish_and_consume(
    settings: Settings, log: Path, mapping: str | Path, limit_cases: int | None = None, timeout_s: float = 120.0
) -> PublishReport:
    table = read_event_log(log, load_mapping(mapping), limit_cases=limit_cases)
    cases = list(iter_cases(table))
    started = time.monotonic()
    published = 0
    with EventProducer(settings) as producer:
        for case in tqdm(cases, desc="publish ui.state", unit="case"):
            for event in case.state_events():
                producer.send(settings.topics.ui_state, event, key=event.session_id)
                published += 1
    publish_s = time.monotonic() - started
    app = build_app(settings, app_id=f"{settings.app_id}-tally")
    tally = UIStateTally()
    register_tally_agent(app, settings.topics, tally, codec_for(settings))
    with tqdm(total=published, desc="consume ui.state", unit="event") as bar:

        def done() -> bool:
            bar.update(tally.seen - bar.n)
            return tally.seen >= published

        consume_s = run_app_until(app, done, timeout_s=timeout_s)
    return PublishReport(
        cases=len(cases),
        events_published=published,
        events_consumed=tally.events,
        dead_letters=tally.dead_letters,
        sessions_seen=len(tally.sessions),
        publish_s=publish_s,
        consume_s=consume_s,
    )
