"""Clients of the REST application over a fake engine; no database involved."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from rest_fakes import ClientFactory, FakeEngine

from rochallor_server.api.rest import app as rest_app
from rochallor_server.metrics import Metrics
from rochallor_server.service.workflow_service import WorkflowService


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine()


@pytest.fixture
async def make_client() -> AsyncIterator[ClientFactory]:
    """``await make_client(engine, dispatch_mode=..., client_max_size=...)``."""
    clients: list[TestClient[Any, Any]] = []

    async def factory(engine: WorkflowService, **options: Any) -> TestClient[Any, Any]:
        # Like every Rochallor SDK, the client declares JSON on every request (posts without
        # it are refused: see api/rest/auth.py).
        client: TestClient[Any, Any] = TestClient(
            TestServer(rest_app.make_app(Metrics(), engine, **options)),
            headers={"Content-Type": "application/json"},
        )
        await client.start_server()
        clients.append(client)
        return client

    yield factory
    for client in clients:
        await client.close()


@pytest.fixture
async def client(make_client: ClientFactory, engine: FakeEngine) -> TestClient[Any, Any]:
    return await make_client(engine)
