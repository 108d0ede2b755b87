"""The relay's Kafka producer and the start-up checks of ``kafka_outbox`` mode
(``kafka-dispatch.md`` §3, §5.4).

aiokafka's defaults differ from the Java client's: idempotence is off and ``acks=1``. Both
are set here; the partitioner is aiokafka's default, murmur2 of the key, as the Java client.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from rochallor_server.config import KafkaSettings, KafkaTransport
from rochallor_server.dispatch.kafka_outbox.event import topic_for
from rochallor_server.errors import ConfigError, RochallorError

# A produce request (or a metadata wait) that takes longer fails the relay cycle; rows stay.
REQUEST_TIMEOUT_MS = 10_000


class KafkaUnavailable(RochallorError):
    """The Kafka broker cannot be used."""


def _ssl_context(settings: KafkaSettings) -> ssl.SSLContext:
    if settings.tls_server_name is not None:
        # aiokafka verifies the broker's own host name and has no override.
        raise ConfigError(
            "WE_KAFKA_TLS_SERVER_NAME", "not supported by this engine; leave it unset"
        )
    try:
        context = ssl.create_default_context(
            cafile=str(settings.tls_ca_path) if settings.tls_ca_path else None
        )
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            "WE_KAFKA_TLS_CA_PATH", f"cannot load {settings.tls_ca_path}: {exc}"
        ) from exc
    if settings.tls_ca_path is not None and not context.get_ca_certs():
        raise ConfigError("WE_KAFKA_TLS_CA_PATH", f"no certificate in {settings.tls_ca_path}")
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def client_options(settings: KafkaSettings) -> dict[str, Any]:
    """Connection options shared by the producer and the admin client."""
    options: dict[str, Any] = {
        "bootstrap_servers": list(settings.seed_brokers),
        "request_timeout_ms": REQUEST_TIMEOUT_MS,
        "client_id": "rochallor-server",
    }
    if settings.transport is KafkaTransport.SASL_SCRAM_TLS:
        options.update(
            security_protocol="SASL_SSL",
            ssl_context=_ssl_context(settings),
            sasl_mechanism=settings.sasl_mechanism,
            sasl_plain_username=settings.sasl_username,
            sasl_plain_password=settings.sasl_password,
        )
    return options


def make_producer(settings: KafkaSettings) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        **client_options(settings),
        acks="all",
        enable_idempotence=True,
        compression_type=None,
        linger_ms=0,
        max_batch_size=1024 * 1024,
    )


async def start_producer(settings: KafkaSettings) -> AIOKafkaProducer:
    """A started producer; :class:`KafkaUnavailable` naming the brokers if none answers."""
    producer = make_producer(settings)
    try:
        await producer.start()
    except KafkaError as exc:
        await producer.stop()
        brokers = ",".join(settings.seed_brokers)
        raise KafkaUnavailable(
            f"kafka_outbox: cannot reach the Kafka brokers {brokers} (WE_KAFKA_SEED_BROKERS): {exc}"
        ) from exc
    return producer


async def check_topics(settings: KafkaSettings, job_types: Sequence[str]) -> None:
    """Every ``workflow.jobs.<jobType>`` topic must exist (the engine never creates topics)."""
    if not job_types:
        return
    admin = AIOKafkaAdminClient(**client_options(settings))
    try:
        await admin.start()
        existing = set(await admin.list_topics())
    except KafkaError as exc:
        brokers = ",".join(settings.seed_brokers)
        raise KafkaUnavailable(f"kafka_outbox: cannot list the topics of {brokers}: {exc}") from exc
    finally:
        await admin.close()
    missing = sorted(topic_for(t) for t in set(job_types) if topic_for(t) not in existing)
    if missing:
        raise KafkaUnavailable(
            "kafka_outbox: missing Kafka topic(s) "
            + ", ".join(missing)
            + " for the job types of stored definitions; create them (the engine does not,"
            " and auto-creation is disabled)"
        )
