"""Switching dispatch modes is a restart with another WE_DISPATCH_MODE, no SQL; jobs in flight
at a switch finish either way (``kafka-dispatch.md`` §1, §4.1)."""

from __future__ import annotations

from typing import Any

import aiohttp
import asyncpg

from rochallor_sdk import KafkaWorker, Registry, create_client
from rochallor_sdk._kafka import decode_event
from rochallor_server.app import Server
from rochallor_server.testing.kafka_broker import KafkaBroker, create_topics

from .support import chain, eventually, read_topic, settings_for


async def _status(admin: Any, instance_id: str) -> str:
    status: str = (await admin.get_instance(instance_id))["status"]
    return status


async def test_polling_to_kafka_to_polling_with_jobs_in_flight(
    pg_dsn: str, kafka_broker: KafkaBroker, unique: str
) -> None:
    first, second = f"{unique}-first", f"{unique}-second"
    await create_topics(kafka_broker.bootstrap, [f"workflow.jobs.{t}" for t in (first, second)])
    flow = f"switch-{unique}"

    # 1. polling: two jobs claimed and still running when the engine stops; one with a lease
    #    that runs out soon, one with a lease that outlives the switch
    job_of: dict[str, str] = {}
    for lease in ("2s", "60s"):
        polling = Server(settings_for(pg_dsn, None, WE_JOB_LEASE=lease))
        await polling.start()
        try:
            async with create_client(f"http://127.0.0.1:{polling.rest_port}") as admin:
                if lease == "2s":
                    await admin.upload_definition(chain(flow, [first, second]))
                instance_id = (await admin.start_instance(flow))["id"]
                [job] = await admin.poll(worker_id="old", job_types=[first], max_jobs=5, wait=0)
                assert job.instance_id == instance_id
                job_of[instance_id] = job.id
        finally:
            await polling.stop()
    abandoned, finishing = job_of

    # 2. kafka_outbox: the claimed job's completion is accepted and the instance goes on over
    #    Kafka; the abandoned one's lease expires and it is dispatched over Kafka as well.
    kafka = Server(settings_for(pg_dsn, kafka_broker.bootstrap))
    await kafka.start()
    handled: list[tuple[str, str]] = []
    registry = Registry()

    @registry.register(first)
    @registry.register(second)
    def handle(ctx: dict[str, Any]) -> dict[str, Any]:
        handled.append((ctx["instanceId"], ctx["jobType"]))
        return {}

    url = f"http://127.0.0.1:{kafka.rest_port}"
    try:
        async with aiohttp.ClientSession() as http:
            body = {"workerId": "new", "jobTypes": [first], "maxJobs": 1}
            async with http.post(f"{url}/v1/jobs/poll", json=body) as response:
                assert response.status == 410
                assert (await response.json())["error"] == "poll path disabled"
        async with create_client(url) as admin:
            await admin.complete(job_of[finishing], worker_id="old", variables={"done": 1})
            async with KafkaWorker(
                registry, brokers=kafka_broker.bootstrap, engine_url=url, handle_signals=False
            ):

                async def both_completed() -> bool:
                    return {await _status(admin, i) for i in (finishing, abandoned)} == {
                        "COMPLETED"
                    }

                await eventually(both_completed, timeout=60, what="both instances to complete")
            # a third instance is dispatched, but nobody consumes it before the next switch
            pending = (await admin.start_instance(flow))["id"]

            async def published() -> bool:
                return await _outbox_rows(pg_dsn) == 0

            await eventually(published, what="the last dispatch to be published")
    finally:
        await kafka.stop()
    assert (finishing, second) in handled and (abandoned, first) in handled
    assert (finishing, first) not in handled, "the job completed by its poller is not redone"
    reclaimed = [
        decode_event(r.value)
        for r in await read_topic(kafka_broker.bootstrap, f"workflow.jobs.{first}", count=2)
    ]
    assert {e.job.id for e in reclaimed if e.job.instance_id == abandoned} == {job_of[abandoned]}

    # 3. polling again: the job dispatched over Kafka but never handled is pollable
    polling = Server(settings_for(pg_dsn, None))
    await polling.start()
    try:
        async with create_client(f"http://127.0.0.1:{polling.rest_port}") as admin:
            [job] = await admin.poll(worker_id="back", job_types=[first], max_jobs=5, wait=0)
            assert job.instance_id == pending
            await admin.complete(job.id, worker_id="back", variables={})
            [job] = await admin.poll(worker_id="back", job_types=[second], max_jobs=5, wait=2)
            await admin.complete(job.id, worker_id="back", variables={})
            assert await _status(admin, pending) == "COMPLETED"
    finally:
        await polling.stop()
    assert await _outbox_rows(pg_dsn) == 0, "polling mode writes no outbox rows"


async def _outbox_rows(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM dispatch_outbox"))
    finally:
        await conn.close()
