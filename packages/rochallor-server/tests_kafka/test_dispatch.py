"""kafka_outbox mode end to end: engine → outbox → relay → real broker → SDK Kafka runner →
completion over REST or gRPC."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

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
