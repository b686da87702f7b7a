"""One real Tansu broker for the whole integration session; unique topics and groups per test."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from selective_autonomy.config import Settings, TopicSettings
from selective_autonomy.streams.broker import EmbeddedBroker
from selective_autonomy.streams.topics import ensure_topics


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    log = tmp_path_factory.mktemp("broker") / "tansu.log"
    with EmbeddedBroker(log_path=log) as running:
        yield running


@pytest.fixture
def make_settings(broker: EmbeddedBroker, tmp_path: Path) -> Callable[..., Settings]:
    """Settings on the session broker with topics and app id unique to this call."""

    def factory(partitions: int = 2, create: bool = True) -> Settings:
        suffix = uuid.uuid4().hex[:8]
        base = TopicSettings()
        topics = TopicSettings(
            **{role: f"{name}.{suffix}" for role, name in base.names().items()}, partitions=partitions
        )
        settings = Settings(
            kafka=broker.kafka_settings(), topics=topics, app_id=f"test-{suffix}", data_dir=tmp_path / f"data-{suffix}"
        )
        if create:
            ensure_topics(settings)
        return settings

    return factory


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()
