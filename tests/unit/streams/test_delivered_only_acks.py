"""Only records delivered to an agent can move the committable offset (see ``DeliveredOnlyAcks``)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from faust.types import TP
from faust.types.tuples import ConsumerMessage

from selective_autonomy.config import Settings
from selective_autonomy.streams.app import DeliveredOnlyAcks, build_app, raw_topic

TOPIC = "ui.state"


def consumer_with_agent(tmp_path: Path) -> DeliveredOnlyAcks:
    settings = Settings(data_dir=tmp_path)
    app = build_app(settings, app_id="acks-test")

    topic = raw_topic(app, TOPIC)
    app.topics.add(topic)
    # What the conductor does when it subscribes (Conductor._update_indices), without a broker.
    app.topics._acking_topics.add(TOPIC)  # type: ignore[attr-defined]
    consumer = app.consumer
    assert isinstance(consumer, DeliveredOnlyAcks)
    return consumer


def message(offset: int, *, delivered: bool) -> ConsumerMessage:
    record = ConsumerMessage(TOPIC, 0, offset, 0.0, 0, None, b"k", b"v", None)
    record.tracked = delivered
    return record


def test_a_skipped_record_leaves_a_gap_that_stops_the_commit(tmp_path: Path) -> None:
    consumer = consumer_with_agent(tmp_path)
    tp = TP(TOPIC, 0)
    assert message(0, delivered=True).ack(consumer)
    # Fetched under the previous generation: faust skips it and acks it without delivering it.
    assert not message(1, delivered=False).ack(consumer)
    assert message(2, delivered=True).ack(consumer)
    assert consumer.refused_acks == 1
    assert consumer._new_offset(tp) == 1  # the commit stops before the record nobody saw


def test_delivered_records_commit_as_faust_does(tmp_path: Path) -> None:
    consumer = consumer_with_agent(tmp_path)
    for offset in range(3):
        assert message(offset, delivered=True).ack(consumer)
    assert consumer.refused_acks == 0
    assert consumer._new_offset(TP(TOPIC, 0)) == 3


def test_a_gap_in_the_fetched_offsets_is_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    consumer = consumer_with_agent(tmp_path)
    tp = TP(TOPIC, 0)
    with caplog.at_level(logging.WARNING, logger="selective_autonomy.streams.app"):
        asyncio.run(consumer._add_gap(tp, 5, 7))
    assert consumer.gaps == 1
    assert "offsets 5..7" in caplog.text
