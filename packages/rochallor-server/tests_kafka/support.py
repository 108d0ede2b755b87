"""Helpers of the Kafka dispatch tests: engines in kafka_outbox mode, definitions, consuming
topics directly, waiting with deadlines."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, ConsumerRecord

from rochallor_server.config import Settings, load_settings

T = TypeVar("T")


def kafka_env(bootstrap: str, **extra: str) -> dict[str, str]:
    return {
        "WE_DISPATCH_MODE": "kafka_outbox",
        "WE_KAFKA_SEED_BROKERS": bootstrap,
        "WE_KAFKA_TRANSPORT": "plaintext",
        "WE_OUTBOX_LEADER_INTERVAL": "500ms",
        **extra,
    }


def settings_for(pg_dsn: str, bootstrap: str | None, **extra: str) -> Settings:
    """An in-process engine on free loopback ports; kafka_outbox mode unless ``bootstrap`` is
    ``None``."""
    env = {
        "WE_POSTGRES_DSN": pg_dsn,
        "WE_BIND_HOST": "127.0.0.1",
        "WE_REST_PORT": "0",
        "WE_GRPC_PORT": "0",
        "WE_METRICS_PORT": "0",
        "WE_LEASE_SWEEP_INTERVAL": "200ms",
        "WE_TIMER_SWEEP_INTERVAL": "200ms",
        "DB_MIN_CONNS": "1",
        "DB_MAX_CONNS": "10",
    }
    if bootstrap is not None:
        env.update(kafka_env(bootstrap))
    return load_settings({**env, **extra})


def chain(definition_id: str, job_types: list[str], *, retry_count: int = 0) -> dict[str, Any]:
    """SERVICE_TASK steps of ``job_types`` one after the other, then END."""
    steps: list[dict[str, Any]] = []
    for index, job_type in enumerate(job_types):
        steps.append(
            {
                "id": f"step-{index}",
                "name": f"Step {index}",
                "type": "SERVICE_TASK",
                "jobType": job_type,
                "retryCount": retry_count,
                "nextStep": f"step-{index + 1}" if index + 1 < len(job_types) else "end",
            }
        )
    steps.append({"id": "end", "name": "End", "type": "END"})
    return {"id": definition_id, "name": definition_id, "steps": steps}


async def eventually(
    probe: Callable[[], Awaitable[T | None]], *, timeout: float = 30.0, what: str = "condition"
) -> T:
    """Poll ``probe`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.1)


async def read_topic(
    bootstrap: str, topic: str, *, count: int, timeout: float = 30.0
) -> list[ConsumerRecord[bytes, bytes]]:
    """At least ``count`` records of ``topic`` from its beginning (no group, no commit)."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    try:
        async with asyncio.timeout(timeout):
            while len(records) < count:
                batches = await consumer.getmany(timeout_ms=200)
                for batch in batches.values():
                    records.extend(batch)
        # anything else already there (duplicates)
        batches = await consumer.getmany(timeout_ms=500)
        for batch in batches.values():
            records.extend(batch)
    finally:
        await consumer.stop()
    return records
