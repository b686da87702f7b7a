"""Broker-profile tweaks can be passed to the app factory instead of the profile's."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from selective_autonomy.config import BrokerProfile, KafkaSettings, Settings
from selective_autonomy.streams.app import build_app
from selective_autonomy.streams.kafka_config import faust_settings, tweaks_for


def test_the_app_takes_the_tweaks_it_is_given(tmp_path: Path) -> None:
    settings = Settings(kafka=KafkaSettings(profile=BrokerProfile.tansu), data_dir=tmp_path)
    assert build_app(settings, app_id="profile").tweaks == tweaks_for(settings.kafka)
    tweaks = dataclasses.replace(tweaks_for(settings.kafka), consumer_fetch_wait_ms=None, session_timeout_ms=9000)
    app = build_app(settings, app_id="tweaked", tweaks=tweaks)
    assert app.tweaks is tweaks
    assert app.conf.broker_session_timeout == 9.0
    assert app.fetch_wait_ms() is None  # no consumer has started


def test_faust_settings_follow_the_tweaks() -> None:
    kafka = KafkaSettings(profile=BrokerProfile.tansu)
    assert faust_settings(kafka)["producer_max_batch_size"] == 1
    unbatched = dataclasses.replace(tweaks_for(kafka), faust_producer_max_batch_size=None)
    assert "producer_max_batch_size" not in faust_settings(kafka, unbatched)


def test_tansu_turns_off_the_recovery_check_its_high_watermark_would_fail(tmp_path: Path) -> None:
    tansu = Settings(kafka=KafkaSettings(profile=BrokerProfile.tansu), data_dir=tmp_path)
    kafka = Settings(kafka=KafkaSettings(profile=BrokerProfile.kafka), data_dir=tmp_path)
    assert build_app(tansu, app_id="tansu").conf.recovery_consistency_check is False
    assert build_app(kafka, app_id="kafka").conf.recovery_consistency_check is True
