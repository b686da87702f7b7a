"""Settings precedence (overrides > env > YAML > defaults) and pass-through to Kafka clients."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from selective_autonomy.config import (
    DB_FILE,
    DEFAULT_TOP_K,
    BrokerProfile,
    KafkaSettings,
    LearningSettings,
    StageRules,
    StoreSettings,
    load_settings,
    redacted,
)
from selective_autonomy.errors import ConfigError
from selective_autonomy.streams.kafka_config import confluent_config, faust_broker_url, faust_settings


def test_yaml_then_env_then_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "selauto.yaml"
    config.write_text("kafka:\n  bootstrap_servers: yaml:9092\n  client_id: from-yaml\ntopics:\n  partitions: 2\n")
    monkeypatch.setenv("SELAUTO_KAFKA__CLIENT_ID", "from-env")
    settings = load_settings(config, app_id="override")
    assert settings.kafka.bootstrap_servers == "yaml:9092"
    assert settings.kafka.client_id == "from-env"
    assert settings.topics.partitions == 2
    assert settings.app_id == "override"


def test_config_file_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("wire_format: avro\n")
    monkeypatch.setenv("SELAUTO_CONFIG_FILE", str(config))
    assert load_settings().wire_format == "avro"


def test_promotion_is_automatic_unless_confirmed_is_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().learning.promotion == "automatic"
    monkeypatch.setenv("SELAUTO_LEARNING__PROMOTION", "confirmed")
    assert load_settings().learning.promotion == "confirmed"
    monkeypatch.setenv("SELAUTO_LEARNING__PROMOTION", "manual")
    with pytest.raises(Exception, match="'automatic' or 'confirmed'"):
        load_settings()


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.yaml")


def test_unknown_keys_are_refused(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("kafka:\n  bootstrap_server: typo:1\n")
    with pytest.raises(Exception, match="bootstrap_server"):
        load_settings(config)


def test_sasl_and_tls_pass_through_and_secrets_are_masked() -> None:
    kafka = KafkaSettings(
        bootstrap_servers="b1:9093,b2:9093",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="svc",
        sasl_password="hunter2",
        ssl_ca_location=Path("/etc/ca.pem"),
        extra={"socket.keepalive.enable": True},
    )
    conf = confluent_config(kafka, "consumer")
    assert conf["security.protocol"] == "SASL_SSL"
    assert conf["sasl.mechanism"] == "SCRAM-SHA-512"
    assert conf["sasl.username"] == "svc"
    assert conf["sasl.password"] == "hunter2"
    assert conf["ssl.ca.location"] == "/etc/ca.pem"
    assert conf["socket.keepalive.enable"] is True
    assert faust_broker_url(kafka) == "kafka://b1:9093;kafka://b2:9093"
    assert "hunter2" not in str(redacted(load_settings(kafka=kafka)))


def test_kafka_profile_leaves_client_defaults_alone() -> None:
    conf = confluent_config(KafkaSettings(), "consumer")
    assert not {"fetch.wait.max.ms", "session.timeout.ms", "auto.offset.reset"} & conf.keys()
    assert "broker_session_timeout" not in faust_settings(KafkaSettings())


def test_tansu_profile_adjusts_only_the_documented_settings() -> None:
    kafka = KafkaSettings(profile=BrokerProfile.tansu)
    conf = confluent_config(kafka, "consumer")
    assert conf["fetch.wait.max.ms"] == 10
    assert conf["session.timeout.ms"] == 6000
    assert conf["auto.offset.reset"] == "earliest"
    assert faust_settings(kafka)["broker_session_timeout"] == 6.0
    assert confluent_config(kafka, "producer").get("fetch.wait.max.ms") is None


def test_group_timings_override_the_profile_for_every_client() -> None:
    for profile in BrokerProfile:
        kafka = KafkaSettings(profile=profile, session_timeout_ms=4000, heartbeat_interval_ms=500)
        conf = confluent_config(kafka, "consumer")
        assert (conf["session.timeout.ms"], conf["heartbeat.interval.ms"]) == (4000, 500)
        faust = faust_settings(kafka)
        assert (faust["broker_session_timeout"], faust["broker_heartbeat_interval"]) == (4.0, 0.5)
    assert "session.timeout.ms" not in confluent_config(KafkaSettings(heartbeat_interval_ms=500), "consumer")


def test_group_heartbeat_must_be_within_the_session() -> None:
    with pytest.raises(ValidationError, match="heartbeat_interval_ms"):
        KafkaSettings(session_timeout_ms=2000, heartbeat_interval_ms=2000)


def test_config_is_a_leaf_that_imports_no_other_part_of_the_product() -> None:
    # A fresh interpreter: in this one the test session has imported half the package already.
    code = (
        "import sys, selective_autonomy.config\n"
        "mods = sorted(m for m in sys.modules if m.startswith('selective_autonomy.'))\n"
        "print('\\n'.join(mods))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.split()
    outside = [m for m in loaded if not m.startswith("selective_autonomy.config") and m != "selective_autonomy.errors"]
    assert outside == []
    assert "selective_autonomy.config.console" in loaded and "selective_autonomy.config.edges" in loaded


def test_top_k_is_a_worker_setting_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().worker.top_k == DEFAULT_TOP_K == 5
    monkeypatch.setenv("SELAUTO_WORKER__TOP_K", "3")
    assert load_settings().worker.top_k == 3
    monkeypatch.setenv("SELAUTO_WORKER__TOP_K", "0")
    with pytest.raises(ValidationError):
        load_settings()


def test_store_url_is_the_dsn_or_an_absolute_sqlite_file_under_the_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert StoreSettings().resolved_url(Path("data")) == f"sqlite:///{tmp_path / 'data' / DB_FILE}"
    dsn = "postgresql+psycopg://selauto:secret@db/selauto"
    assert StoreSettings(url=SecretStr(dsn)).resolved_url(Path("data")) == dsn
    monkeypatch.setenv("SELAUTO_STORE__URL", dsn)
    settings = load_settings()
    assert settings.store.resolved_url(settings.data_dir) == dsn


def test_the_learning_section_is_the_stage_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SELAUTO_LEARNING__TARGET_PRECISION", "0.95")
    monkeypatch.setenv("SELAUTO_LEARNING__MIN_CERTIFIED_COVERAGE", "0.2")
    learning = load_settings().learning
    assert isinstance(learning, StageRules)
    assert (learning.target_precision, learning.min_certified_coverage) == (0.95, 0.2)
    assert set(StageRules.model_fields) < set(LearningSettings.model_fields)
