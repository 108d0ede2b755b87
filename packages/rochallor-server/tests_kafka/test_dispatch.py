"""kafka_outbox mode end to end: engine → outbox → relay → real broker → SDK Kafka runner →
completion over REST or gRPC."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from rochallor_sdk import KafkaWorker, Registry, create_client
from rochallor_sdk._kafka import decode_event
from rochallor_server.app import Server
from rochallor_server.testing.kafka_broker import KafkaBroker, create_topics

from .support import chain, eventually, read_topic, settings_for


@pytest_asyncio.fixture
async def kafka_server(pg_dsn: str, kafka_broker: KafkaBroker) -> AsyncIterator[Server]:
    server = Server(settings_for(pg_dsn, kafka_broker.bootstrap))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def _url(server: Server, transport: str) -> str:
    if transport == "grpc":
        return f"127.0.0.1:{server.grpc_port}"
    return f"http://127.0.0.1:{server.rest_port}"


@pytest.mark.parametrize("transport", ["rest", "grpc"])
async def test_a_workflow_completes_through_the_kafka_runner(
    kafka_server: Server, kafka_broker: KafkaBroker, unique: str, transport: str
) -> None:
    first, second = f"{unique}-reserve", f"{unique}-ship"
    await create_topics(kafka_broker.bootstrap, [f"workflow.jobs.{t}" for t in (first, second)])
    seen: list[dict[str, Any]] = []
    registry = Registry()

    @registry.register(first)
    def reserve(ctx: dict[str, Any]) -> dict[str, Any]:
        seen.append(ctx)
        return {"reserved": ctx["variables"]["qty"] * 2}

    @registry.register(second)
    async def ship(ctx: dict[str, Any]) -> dict[str, Any]:
        seen.append(ctx)
        return {"shipped": ctx["variables"]["reserved"] + 1}

    url = _url(kafka_server, transport)
    async with create_client(url, transport) as admin:
        await admin.upload_definition(chain(f"flow-{unique}", [first, second]))
        instance = await admin.start_instance(f"flow-{unique}", variables={"qty": 3})
        async with KafkaWorker(
            registry,
            brokers=kafka_broker.bootstrap,
            engine_url=url,
            transport=transport,  # type: ignore[arg-type]
            handle_signals=False,
        ):

            async def done() -> dict[str, Any] | None:
                found = await admin.get_instance(instance["id"])
                return found if found["status"] == "COMPLETED" else None

            finished = await eventually(done, what="the instance to complete")
    assert finished["variables"] == {"qty": 3, "reserved": 6, "shipped": 7}
    assert [ctx["jobType"] for ctx in seen] == [first, second]
    assert seen[0]["instanceId"] == instance["id"]
    assert seen[0]["retriesRemaining"] == 0


async def _complete_all(
    server: Server, bootstrap: str, registry: Registry, instance_ids: list[str]
) -> None:
    url = _url(server, "rest")
    async with (
        create_client(url) as admin,
        KafkaWorker(registry, brokers=bootstrap, engine_url=url, handle_signals=False),
    ):

        async def all_done() -> bool:
            for instance_id in instance_ids:
                if (await admin.get_instance(instance_id))["status"] != "COMPLETED":
                    return False
            return True

        await eventually(all_done, timeout=60, what="every instance to complete")


async def test_records_of_one_instance_share_a_partition_in_creation_order(
    kafka_server: Server, kafka_broker: KafkaBroker, unique: str
) -> None:
    job_type = f"{unique}-ordered"
    topic = f"workflow.jobs.{job_type}"
    await create_topics(kafka_broker.bootstrap, [topic], partitions=3)
    registry = Registry()

    @registry.register(job_type)
    async def step(ctx: dict[str, Any]) -> dict[str, Any]:
        return {"trail": [*ctx["variables"].get("trail", []), ctx["stepExecutionId"]]}

    url = _url(kafka_server, "rest")
    async with create_client(url) as admin:
        await admin.upload_definition(chain(f"ordered-{unique}", [job_type] * 3))
        ids = [(await admin.start_instance(f"ordered-{unique}"))["id"] for _ in range(12)]
        await _complete_all(kafka_server, kafka_broker.bootstrap, registry, ids)
        histories = {i: [e["id"] for e in await admin.get_history(i)] for i in ids}
        variables = {i: (await admin.get_instance(i))["variables"] for i in ids}

    records = await read_topic(kafka_broker.bootstrap, topic, count=36)
    by_instance: dict[str, list[Any]] = {}
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        assert record.key is not None
        by_instance.setdefault(record.key.decode(), []).append(record)
    assert sorted(by_instance) == sorted(ids)
    partitions_used = set()
    for instance_id, own in by_instance.items():
        assert len({r.partition for r in own}) == 1, "one instance, one partition"
        partitions_used.add(own[0].partition)
        events = [decode_event(r.value) for r in own]
        assert [e.job.step_execution_id for e in events] == histories[instance_id][:3]
        assert variables[instance_id]["trail"] == histories[instance_id][:3]
    assert len(partitions_used) > 1, "keys spread over the partitions"


async def test_a_retryable_failure_is_a_new_record_with_one_retry_less(
    kafka_server: Server, kafka_broker: KafkaBroker, unique: str
) -> None:
    job_type = f"{unique}-flaky"
    topic = f"workflow.jobs.{job_type}"
    await create_topics(kafka_broker.bootstrap, [topic])
    attempts: list[int] = []
    registry = Registry()

    @registry.register(job_type)
    def flaky(ctx: dict[str, Any]) -> dict[str, Any]:
        attempts.append(ctx["retriesRemaining"])
        if ctx["retriesRemaining"] > 0:
            raise RuntimeError("not yet")
        return {"ok": True}

    async with create_client(_url(kafka_server, "rest")) as admin:
        await admin.upload_definition(chain(f"flaky-{unique}", [job_type], retry_count=2))
        instance = await admin.start_instance(f"flaky-{unique}")
        await _complete_all(kafka_server, kafka_broker.bootstrap, registry, [instance["id"]])

    assert attempts == [2, 1, 0]
    events = [
        decode_event(r.value) for r in await read_topic(kafka_broker.bootstrap, topic, count=3)
    ]
    assert [e.job.retries_remaining for e in events] == [2, 1, 0]
    assert len({e.job.id for e in events}) == 1
    assert len({e.dedup_id for e in events}) == 3, "each dispatch is a new message"
