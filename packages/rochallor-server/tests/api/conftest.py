"""Clients of the REST application over the fake service; no database involved."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from rest_fakes import ClientFactory, FakeService

from rochallor_server.api.rest import app as rest_app
from rochallor_server.metrics import Metrics
from rochallor_server.service.workflow_service import WorkflowService


@pytest.fixture
def service() -> FakeService:
    return FakeService()


@pytest.fixture
async def make_client() -> AsyncIterator[ClientFactory]:
    """``await make_client(service, client_max_size=..., cors_origins=...)``."""
    clients: list[TestClient[Any, Any]] = []

    async def factory(service: WorkflowService, **options: Any) -> TestClient[Any, Any]:
        # Like every Rochallor SDK, the client declares JSON on every request (posts without
        # it are refused: see api/rest/auth.py).
        client: TestClient[Any, Any] = TestClient(
            TestServer(rest_app.make_app(Metrics(), service, **options)),
            headers={"Content-Type": "application/json"},
        )
        await client.start_server()
        clients.append(client)
        return client

    yield factory
    for client in clients:
        await client.close()


@pytest.fixture
async def client(make_client: ClientFactory, service: FakeService) -> TestClient[Any, Any]:
    return await make_client(service)
