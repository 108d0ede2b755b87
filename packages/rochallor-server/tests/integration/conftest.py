from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from rochallor_server.app import Server
from rochallor_server.config import load_settings

from .client import Api

CONFORMANCE = Path(__file__).resolve().parents[4] / "conformance"


def fixture_definition(name: str) -> dict[str, object]:
    path = CONFORMANCE / "definitions" / "valid" / f"{name}.json"
    document: dict[str, object] = json.loads(path.read_text())
    return document


@pytest_asyncio.fixture
async def server(pg_dsn: str) -> AsyncIterator[Server]:
    settings = load_settings(
        {
            "WE_POSTGRES_DSN": pg_dsn,
            "WE_BIND_HOST": "127.0.0.1",
            "WE_REST_PORT": "0",
            "WE_GRPC_PORT": "0",
            "WE_METRICS_PORT": "0",
            "WE_JOB_LEASE": "30s",
            "WE_LEASE_SWEEP_INTERVAL": "200ms",
            "WE_TIMER_SWEEP_INTERVAL": "200ms",
            "DB_MIN_CONNS": "1",
            "DB_MAX_CONNS": "10",
        }
    )
    srv = Server(settings)
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


@pytest_asyncio.fixture
async def api(server: Server) -> AsyncIterator[Api]:
    async with Api.connect(f"http://127.0.0.1:{server.rest_port}") as client:
        yield client


@pytest.fixture
def order_fulfilment() -> dict[str, object]:
    return fixture_definition("order-fulfilment")
