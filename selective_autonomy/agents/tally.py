"""A counting agent over ``ui.state``: the smallest real consumer of the contract, used by the
foundation demo and as the pass-through baseline of the streaming benchmark."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import faust

from selective_autonomy.agents.dead_letters import DeadLetterRouter
from selective_autonomy.config import TopicSettings
from selective_autonomy.schemas.events import UIStateChanged
from selective_autonomy.streams.app import raw_topic
from selective_autonomy.streams.serialization import AvroCodec


@dataclass
class UIStateTally:
    events: int = 0
    dead_letters: int = 0
    by_process: Counter[str] = field(default_factory=Counter)
    sessions: set[str] = field(default_factory=set)

    def add(self, state: UIStateChanged) -> None:
        self.events += 1
        self.by_process[state.process_id] += 1
        self.sessions.add(state.session_id)

    @property
    def seen(self) -> int:
        return self.events + self.dead_letters


def register_tally_agent(app: faust.App, topics: TopicSettings, tally: UIStateTally, codec: AvroCodec) -> None:
    source = raw_topic(app, topics.ui_state)
    router = DeadLetterRouter(codec, raw_topic(app, topics.dead_letter))

    @app.agent(source, name="tally_ui_state")
    async def tally_ui_state(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            state = await router.decode(event, UIStateChanged)
            if state is None:
                tally.dead_letters += 1
                continue
            tally.add(state)
