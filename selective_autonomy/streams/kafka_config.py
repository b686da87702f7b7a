"""Client settings for confluent-kafka and faust, built from :class:`KafkaSettings`.

Security settings pass straight through. The ``tansu`` profile adds the few settings that work
around gaps measured on the embedded Tansu broker; each is commented with the gap it covers. The
``kafka`` profile adds nothing, so production clients run with the library defaults.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import SecretStr

from selective_autonomy.config import BrokerProfile, KafkaSettings

ClientRole = Literal["producer", "consumer", "admin"]


@dataclass(frozen=True)
class ProfileTweaks:
    """Settings a broker profile changes; ``None`` keeps the library default."""

    # Tansu answers a waiting fetch only when fetch.wait.max.ms expires, never early when data
    # arrives: the wait is the floor of every hop's latency, so keep it short.
    consumer_fetch_wait_ms: int | None = None
    # Tansu holds JoinGroup for about half the session timeout: a short session timeout (and a
    # heartbeat to match) keeps joins and rebalances at 1-4 s instead of 20+ s. KafkaSettings'
    # session_timeout_ms and heartbeat_interval_ms override both (the chaos test: 4 s and 0.5 s).
    session_timeout_ms: int | None = None
    heartbeat_interval_ms: int | None = None
    # Tansu reports a wrong high watermark (ListOffsets LATEST) when the last batch holds several
    # records, so `latest` can redeliver; start from the earliest offset when no commit exists.
    auto_offset_reset: Literal["earliest", "latest"] | None = None
    # Tansu's read_committed does not hide aborted records: transactions would not give
    # exactly-once, so the runtime never relies on them there (at-least-once plus idempotent ids).
    allow_transactions: bool = True
    # Tansu cannot add partitions to an existing topic (CreatePartitions is unsupported).
    can_add_partitions: bool = True
    # Tansu's wrong high watermark after multi-record batches makes faust's table recovery stop
    # before the end of the changelog. A one-byte batch limit makes aiokafka send every record
    # in a batch of its own (the first record of a batch always fits), so recovery reads it all.
    faust_producer_max_batch_size: int | None = None
    # The same, for the changelog records an agent sends through its own producer
    # (streams/tables.py): normal batches, then each partition's last record again on its own, so
    # that every changelog partition ends with a one-record batch.
    changelog_single_record_tail: bool = False
    # The same wrong high watermark would make consumer lag (high watermark minus committed
    # offset) report records as consumed or outstanding that are not: the worker does not read
    # lag where the broker cannot report it truthfully.
    reports_true_high_watermark: bool = True
    # faust's table recovery stops the worker (ConsistencyError) when a changelog partition's
    # offset it has read is above the broker's high watermark. Between a multi-record changelog
    # batch and that partition's one-record tail (sent once the batch is acknowledged, never when
    # its writer stops first), Tansu's high watermark lies below records a standby may already
    # have read: a chaos-test worker crashed there on a fresh clone (docs/guarantees.md, the eighth
    # finding). The check guards on-disk stores against deleted topics; the table here lives in
    # memory and is restored from the changelog, so it is off where the watermark cannot be trusted.
    recovery_consistency_check: bool = True


PROFILE_TWEAKS: dict[BrokerProfile, ProfileTweaks] = {
    BrokerProfile.kafka: ProfileTweaks(),
    BrokerProfile.tansu: ProfileTweaks(
        consumer_fetch_wait_ms=10,
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
        auto_offset_reset="earliest",
        allow_transactions=False,
        can_add_partitions=False,
        faust_producer_max_batch_size=1,
        changelog_single_record_tail=True,
        reports_true_high_watermark=False,
        recovery_consistency_check=False,
    ),
}


def tweaks_for(kafka: KafkaSettings) -> ProfileTweaks:
    """The profile's tweaks, with the group timings that ``kafka`` sets explicitly."""
    tweaks = PROFILE_TWEAKS[kafka.profile]
    if kafka.session_timeout_ms is not None:
        tweaks = replace(tweaks, session_timeout_ms=kafka.session_timeout_ms)
    if kafka.heartbeat_interval_ms is not None:
        tweaks = replace(tweaks, heartbeat_interval_ms=kafka.heartbeat_interval_ms)
    return tweaks


class ClientTls(Protocol):
    """The TLS files of a client section: the broker's (``kafka``) and the schema registry's share them."""

    @property
    def ssl_ca_location(self) -> Path | None: ...
    @property
    def ssl_certificate_location(self) -> Path | None: ...
    @property
    def ssl_key_location(self) -> Path | None: ...
    @property
    def ssl_key_password(self) -> SecretStr | None: ...


def tls_config(section: ClientTls) -> dict[str, str]:
    """librdkafka-style ``ssl.*`` properties for the files ``section`` sets (confluent-kafka's
    producers, consumers and schema registry client read the same names)."""
    conf: dict[str, str] = {}
    if section.ssl_ca_location is not None:
        conf["ssl.ca.location"] = str(section.ssl_ca_location)
    if section.ssl_certificate_location is not None:
        conf["ssl.certificate.location"] = str(section.ssl_certificate_location)
    if section.ssl_key_location is not None:
        conf["ssl.key.location"] = str(section.ssl_key_location)
    if section.ssl_key_password is not None:
        conf["ssl.key.password"] = section.ssl_key_password.get_secret_value()
    return conf


def _security_config(kafka: KafkaSettings) -> dict[str, Any]:
    conf: dict[str, Any] = {"security.protocol": kafka.security_protocol}
    if kafka.sasl_mechanism:
        conf["sasl.mechanism"] = kafka.sasl_mechanism
    if kafka.sasl_username is not None:
        conf["sasl.username"] = kafka.sasl_username
    if kafka.sasl_password is not None:
        conf["sasl.password"] = kafka.sasl_password.get_secret_value()
    return conf | tls_config(kafka)


def confluent_config(kafka: KafkaSettings, role: ClientRole, **overrides: Any) -> dict[str, Any]:
    """librdkafka properties for a confluent-kafka client of ``role``.

    Precedence: ``overrides`` > ``kafka.extra`` > profile tweaks > security settings.
    """
    conf: dict[str, Any] = {
        "bootstrap.servers": kafka.bootstrap_servers,
        "client.id": kafka.client_id,
        # Idle connections closed by the broker are normal; do not log each one as an error.
        "log.connection.close": False,
    }
    conf.update(_security_config(kafka))
    tweaks = tweaks_for(kafka)
    if role == "consumer":
        if tweaks.consumer_fetch_wait_ms is not None:
            conf["fetch.wait.max.ms"] = tweaks.consumer_fetch_wait_ms
        if tweaks.session_timeout_ms is not None:
            conf["session.timeout.ms"] = tweaks.session_timeout_ms
        if tweaks.heartbeat_interval_ms is not None:
            conf["heartbeat.interval.ms"] = tweaks.heartbeat_interval_ms
        if tweaks.auto_offset_reset is not None:
            conf["auto.offset.reset"] = tweaks.auto_offset_reset
    if role == "producer":
        # Same partition for the same key as the Java client and aiokafka (faust), so records
        # keyed by session land where the worker's session table expects them.
        conf["partitioner"] = "murmur2_random"
        # Redelivery is handled by deterministic ids downstream; the idempotent producer removes
        # duplicates caused by the producer's own retries.
        conf["enable.idempotence"] = True
    conf.update(kafka.extra)
    conf.update(overrides)
    return conf


def faust_broker_url(kafka: KafkaSettings) -> str:
    return ";".join(f"kafka://{server.strip()}" for server in kafka.bootstrap_servers.split(",") if server.strip())


def faust_credentials(kafka: KafkaSettings) -> Any:
    """faust's credentials object for the configured security protocol, or None for PLAINTEXT."""
    import faust

    if kafka.security_protocol == "PLAINTEXT":
        return None
    ssl_context = None
    if kafka.security_protocol in ("SSL", "SASL_SSL"):
        ssl_context = ssl.create_default_context(cafile=str(kafka.ssl_ca_location) if kafka.ssl_ca_location else None)
        if kafka.ssl_certificate_location is not None:
            ssl_context.load_cert_chain(
                str(kafka.ssl_certificate_location),
                keyfile=str(kafka.ssl_key_location) if kafka.ssl_key_location else None,
                password=kafka.ssl_key_password.get_secret_value() if kafka.ssl_key_password else None,
            )
    if kafka.security_protocol == "SSL":
        return faust.SSLCredentials(ssl_context)
    password = kafka.sasl_password.get_secret_value() if kafka.sasl_password else ""
    return faust.SASLCredentials(
        username=kafka.sasl_username,
        password=password,
        mechanism=kafka.sasl_mechanism or "PLAIN",
        ssl_context=ssl_context,
    )


def faust_settings(kafka: KafkaSettings, tweaks: ProfileTweaks | None = None) -> dict[str, Any]:
    """Keyword settings for ``faust.App`` from the Kafka settings and the profile's tweaks (or
    ``tweaks``, which replace them)."""
    tweaks = tweaks or tweaks_for(kafka)
    settings: dict[str, Any] = {
        "broker": faust_broker_url(kafka),
        "broker_client_id": kafka.client_id,
        # Commits follow processing; duplicates are removed by deterministic action ids.
        "processing_guarantee": "at_least_once",
    }
    credentials = faust_credentials(kafka)
    if credentials is not None:
        settings["broker_credentials"] = credentials
    if tweaks.session_timeout_ms is not None:
        settings["broker_session_timeout"] = tweaks.session_timeout_ms / 1000.0
    if tweaks.heartbeat_interval_ms is not None:
        settings["broker_heartbeat_interval"] = tweaks.heartbeat_interval_ms / 1000.0
    if tweaks.auto_offset_reset is not None:
        settings["consumer_auto_offset_reset"] = tweaks.auto_offset_reset
    if tweaks.faust_producer_max_batch_size is not None:
        settings["producer_max_batch_size"] = tweaks.faust_producer_max_batch_size
    if not tweaks.recovery_consistency_check:
        settings["recovery_consistency_check"] = False
    return settings
