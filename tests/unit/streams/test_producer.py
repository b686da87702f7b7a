"""The contract-event producer's construction (no broker: only what happens before a record is sent)."""

from __future__ import annotations

import pytest

from selective_autonomy.config import KafkaSettings
from selective_autonomy.streams.producer import EventProducer


def test_a_producer_built_from_the_kafka_section_alone_needs_the_codec() -> None:
    # The whole settings name the wire format and the registry a codec is built from; the section does not.
    with pytest.raises(TypeError, match="needs a codec"):
        EventProducer(KafkaSettings())
