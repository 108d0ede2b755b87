"""The SDK's KafkaWorker against the real broker: long handlers keep their partition, and a
job consumed but never reported comes back to another member of the group."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
from aiokafka import AIOKafkaConsumer, TopicPartition

from rochallor_sdk import KafkaWorker, Registry, create_client
from rochallor_server.app import Server
from rochallor_server.testing.kafka_broker import KafkaBroker, create_topics

from .support import chain, eventually, settings_for


@pytest_asyncio.fixture
async def kafka_server(pg_dsn: str, kafka_broker: KafkaBroker) -> AsyncIterator[Server]:
    server = Server(settings_for(pg_dsn, kafka_broker.bootstrap))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def _committed(bootstrap: str, job_type: str) -> int | None:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=f"workflow.workers.{job_type}"
    )
    await consumer.start()
    try:
        offset: int | None = await consumer.committed(
            TopicPartition(f"workflow.jobs.{job_type}", 0)
        )
        return offset
    finally:
        await consumer.stop()


async def test_a_handler_longer_than_the_poll_interval_keeps_its_partition(
    kafka_server: Server, kafka_broker: KafkaBroker, unique: str
) -> None:
    job_type = f"{unique}-slow"
    await create_topics(kafka_broker.bootstrap, [f"workflow.jobs.{job_type}"])
    calls: list[str] = []
    registry = Registry()

    @registry.register(job_type)
    async def slow(ctx: dict[str, Any]) -> dict[str, Any]:
        calls.append(ctx["id"])
        await asyncio.sleep(4)  # twice max.poll.interval.ms below
        return {"slow": True}

    url = f"http://127.0.0.1:{kafka_server.rest_port}"

    def member() -> KafkaWorker:
        return KafkaWorker(
            registry,
            brokers=kafka_broker.bootstrap,
            engine_url=url,
            handle_signals=False,
            # heartbeats well inside the 2 s rebalance timeout, or members miss rebalances
            consumer_options={
                "max_poll_interval_ms": 2000,
                "rebalance_timeout_ms": 2000,
                "heartbeat_interval_ms": 300,
                "session_timeout_ms": 6000,
            },
        )

    async with create_client(url) as admin:
        await admin.upload_definition(chain(f"slow-{unique}", [job_type]))
        # Two members, one partition: a member expelled for polling too rarely would hand the
        # record to the other one, which would run it again.
        async with member() as one, member() as two:
            # a stable group first (a rebalance during the handler is another story)
            await asyncio.wait_for(asyncio.gather(one.wait_assigned(), two.wait_assigned()), 30)
            await asyncio.sleep(1)
            instance = await admin.start_instance(f"slow-{unique}")

            async def done() -> bool:
                return (await admin.get_instance(instance["id"]))["status"] == "COMPLETED"

            await eventually(done, what="the slow job to complete")
    await asyncio.sleep(1)
    assert len(calls) == 1
    # the offset was committed: the group moved past the record
    assert await _committed(kafka_broker.bootstrap, job_type) == 1


async def test_a_record_not_reported_goes_to_the_next_member(
    kafka_server: Server, kafka_broker: KafkaBroker, unique: str
) -> None:
    job_type = f"{unique}-handover"
    await create_topics(kafka_broker.bootstrap, [f"workflow.jobs.{job_type}"])
    started = asyncio.Event()
    stuck = Registry()

    @stuck.register(job_type)
    async def never(ctx: dict[str, Any]) -> dict[str, Any]:
        started.set()
        await asyncio.Event().wait()  # cancelled at the shutdown timeout
        return {}

    finished: list[str] = []
    healthy = Registry()

    @healthy.register(job_type)
    def works(ctx: dict[str, Any]) -> dict[str, Any]:
        finished.append(ctx["id"])
        return {"by": "second"}

    url = f"http://127.0.0.1:{kafka_server.rest_port}"
    async with create_client(url) as admin:
        await admin.upload_definition(chain(f"handover-{unique}", [job_type]))
        instance = await admin.start_instance(f"handover-{unique}")
        first = KafkaWorker(
            stuck,
            brokers=kafka_broker.bootstrap,
            engine_url=url,
            handle_signals=False,
            shutdown_timeout=0.5,
        )
        async with first:
            await asyncio.wait_for(started.wait(), 30)
        assert first.handled == 0
        assert await _committed(kafka_broker.bootstrap, job_type) is None

        async with KafkaWorker(
            healthy, brokers=kafka_broker.bootstrap, engine_url=url, handle_signals=False
        ):

            async def done() -> dict[str, Any] | None:
                found = await admin.get_instance(instance["id"])
                return found if found["status"] == "COMPLETED" else None

            completed = await eventually(done, what="the second member to complete the job")
    assert len(finished) == 1
    assert completed["variables"] == {"by": "second"}
