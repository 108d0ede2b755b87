from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from rochallor_server.app import Server
from rochallor_server.service.workflow_service import WorkflowService
from rochallor_server.store.postgres import PostgresStore, create_pool

from ..support import fixture_definition
from .client import Api
from .services import make_service


@pytest_asyncio.fixture
async def api(server: Server) -> AsyncIterator[Api]:
    async with Api.connect(f"http://127.0.0.1:{server.rest_port}") as client:
        yield client


@pytest_asyncio.fixture
async def pg_store(pg_dsn: str) -> AsyncIterator[PostgresStore]:
    """The store on a fresh database, its job listener already listening (a long poll is
    woken by the first NOTIFY). The service tests build their services over it."""
    pool = await create_pool(pg_dsn, 1, 12)
    store = PostgresStore(pool, listener_reconnect_delay=(0.05, 0.2))
    try:
        assert await store.listen()
        yield store
    finally:
        await store.close()
        await pool.close()


@pytest_asyncio.fixture
async def replicas(pg_store: PostgresStore) -> AsyncIterator[list[WorkflowService]]:
    """Three engines sharing one database (distinct ids, their own batches and caches)."""
    made = [make_service(pg_store, ids_prefix=f"r{n}") for n in range(3)]
    yield made
    for service in made:
        await service.drain()


@pytest.fixture
def order_fulfilment() -> dict[str, object]:
    return fixture_definition("order-fulfilment")
