"""Decode-or-dead-letter, shared by every agent that consumes a contract topic."""

from __future__ import annotations

from typing import TypeVar

import faust

from selective_autonomy.errors import DecodeError
from selective_autonomy.schemas.events import EventModel
from selective_autonomy.streams.dead_letter import dead_letter_for
from selective_autonomy.streams.serialization import AvroCodec

E = TypeVar("E", bound=EventModel)


class DeadLetterRouter:
    """Decodes records of one contract; a record that fails goes to the dead-letter topic."""

    def __init__(self, codec: AvroCodec, dead_letter_topic: faust.TopicT) -> None:
        self.codec = codec
        self.topic = dead_letter_topic
        self.count = 0

    async def decode(self, event: faust.EventT[bytes], model: type[E]) -> E | None:
        """The decoded record, or None after the original bytes were dead-lettered."""
        try:
            return self.codec.decode(event.value, model)
        except DecodeError as exc:
            await self.reject(event, exc)
            return None

    async def reject(self, event: faust.EventT[bytes], reason: BaseException | str) -> None:
        message = event.message
        record = dead_letter_for(message.value, message.key, message.topic, message.partition, message.offset, reason)
        # Awaiting the delivery keeps the guarantee: the input offset is committed only after the
        # dead letter is on the broker.
        future = await self.topic.send(key=message.key, value=self.codec.encode(record, self.topic.get_topic_name()))
        await future
        self.count += 1
