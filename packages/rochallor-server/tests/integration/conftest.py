from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from rochallor_server.app import Server

from ..support import fixture_definition
from .client import Api


@pytest_asyncio.fixture
async def api(server: Server) -> AsyncIterator[Api]:
    async with Api.connect(f"http://127.0.0.1:{server.rest_port}") as client:
        yield client


@pytest.fixture
def order_fulfilment() -> dict[str, object]:
    return fixture_definition("order-fulfilment")
