from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest_asyncio

from rochallor_server.app import Server

from .support import settings_for

# Tests configure the server explicitly; never inherit a developer's engine settings.
for _name in list(os.environ):
    if _name.startswith(("WE_", "ROCHALLOR_")) or _name in {"DB_MAX_CONNS", "DB_MIN_CONNS"}:
        del os.environ[_name]


@pytest_asyncio.fixture
async def server(pg_dsn: str) -> AsyncIterator[Server]:
    """A whole engine (REST, gRPC, sweepers) in this process, on a fresh database."""
    srv = Server(settings_for(pg_dsn))
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()
