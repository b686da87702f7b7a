"""Against the real embedded broker: every contract travels, bad bytes are dead-lettered by an
agent that keeps going, and a consumer group resumes from its committed offsets."""

from __future__ import annotations

import pytest

from selective_autonomy.agents.tally import UIStateTally, register_tally_agent
from selective_autonomy.config import Settings
from selective_autonomy.schemas.events import DeadLetter, EventModel, UIStateChanged
from selective_autonomy.streams.app import build_app
from selective_autonomy.streams.consumer import EventConsumer
from selective_autonomy.streams.producer import EventProducer
from selective_autonomy.streams.runner import run_app_until
from selective_autonomy.streams.serialization import AvroCodec
from selective_autonomy.streams.topics import TopicSpec, ensure_topics
from tests.factories import samples

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("event", samples(), ids=lambda e: e.avro_name)
def test_every_contract_produces_and_consumes(settings: Settings, event: EventModel) -> None:
    topic = f"{settings.topics.ui_state}.{event.avro_name}"
    ensure_topics(settings, [TopicSpec(topic, 1)])
    with EventProducer(settings) as producer:
        producer.send(topic, event, key="s1", headers=[("traceparent", b"00-abc")])
    with EventConsumer(settings, [topic], type(event)) as consumer:
        [received] = consumer.take(1)
    assert received.error is None
    assert received.event == event
    assert received.key == b"s1"
    assert ("traceparent", b"00-abc") in received.headers


def state(i: int) -> UIStateChanged:
    return UIStateChanged(session_id=f"s{i % 7}", process_id="p", business_cluster="c", state_version=i)


def test_agent_dead_letters_malformed_bytes_and_keeps_going(settings: Settings) -> None:
    bad = [b"", b"not avro at all", AvroCodec().encode(state(1))[:-3], b"\x00\x00\x00\x03\xee" + b"\x02" * 20]
    with EventProducer(settings) as producer:
        producer.send(settings.topics.ui_state, state(0), key="s0")
        for i, raw in enumerate(bad):
            producer.send_raw(settings.topics.ui_state, raw, key=f"bad{i}".encode())
        for i in range(1, 30):
            producer.send(settings.topics.ui_state, state(i), key=f"s{i % 7}")
    app = build_app(settings)
    tally = UIStateTally()
    register_tally_agent(app, settings.topics, tally, AvroCodec())
    run_app_until(app, lambda: tally.seen >= 34, timeout_s=60)
    assert tally.events == 30
    assert tally.dead_letters == len(bad)
    with EventConsumer(settings, [settings.topics.dead_letter], DeadLetter) as consumer:
        letters = [r.event for r in consumer.take(len(bad))]
    assert all(letter is not None for letter in letters)
    by_original = {letter.original: letter for letter in letters if letter is not None}
    assert set(by_original) == set(bad)
    for letter in by_original.values():
        assert letter.topic == settings.topics.ui_state
        assert letter.error
        assert letter.error_type == "DecodeError"


def test_consumer_group_resumes_from_committed_offsets(settings: Settings) -> None:
    with EventProducer(settings) as producer:
        for i in range(20):
            producer.send(settings.topics.ui_state, state(i), key=f"s{i % 7}")
    group = f"{settings.app_id}-resume"
    with EventConsumer(settings, [settings.topics.ui_state], UIStateChanged, group_id=group) as first:
        seen = first.take(12)
        first.commit()
    # The rest of the topic plus anything produced after, never the committed part again.
    with EventProducer(settings) as producer:
        for i in range(20, 25):
            producer.send(settings.topics.ui_state, state(i), key=f"s{i % 7}")
    with EventConsumer(settings, [settings.topics.ui_state], UIStateChanged, group_id=group) as second:
        # The join itself takes seconds on the embedded broker: wait for the expected count, then
        # make sure nothing else (a committed record) follows.
        rest = second.take(13, timeout_s=30)
        rest += list(second.iterate(idle_timeout_s=1.5))
    first_versions = {r.event.state_version for r in seen if r.event}
    rest_versions = {r.event.state_version for r in rest if r.event}
    assert len(seen) + len(rest) == 25
    assert first_versions.isdisjoint(rest_versions)
    assert first_versions | rest_versions == set(range(25))
