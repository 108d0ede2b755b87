"""The database away: 503 with Retry-After over REST, UNAVAILABLE over gRPC, /readyz says so,
and the engine reconnects by itself once PostgreSQL is back (a real server stopped and started
again on the same port)."""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from grpclib.client import Channel
from grpclib.const import Status
from grpclib.exceptions import GRPCError

from rochallor_server._gen.workflow import v1 as pb
from rochallor_server.app import Server
from rochallor_server.store.postgres.embedded import EmbeddedPostgres

from ..support import settings_for

POLL = {"workerId": "w", "jobTypes": ["t"], "maxJobs": 1}


@pytest.fixture
async def database() -> AsyncIterator[EmbeddedPostgres]:
    # Not pytest's tmp_path: PostgreSQL runs as another user under root, and a pytest session
    # starting meanwhile makes pytest's base directory private again.
    workdir = Path(tempfile.mkdtemp(prefix="rochallor-outage-"))
    pg = EmbeddedPostgres(workdir / "pg", ephemeral=True)
    try:
        await asyncio.to_thread(pg.start)
        yield pg
    finally:
        await asyncio.to_thread(pg.stop, remove=True)
        shutil.rmtree(workdir, ignore_errors=True)


async def _status(http: aiohttp.ClientSession, method: str, url: str) -> tuple[int, str, str]:
    async with http.request(method, url, json=POLL if method == "POST" else None) as response:
        return response.status, response.headers.get("Retry-After", ""), await response.text()


async def test_an_outage_answers_unavailable_and_the_engine_recovers(
    database: EmbeddedPostgres,
) -> None:
    port = database.port
    server = Server(settings_for(database.dsn))
    await server.start()
    channel = Channel("127.0.0.1", server.grpc_port)
    stub = pb.WorkflowEngineStub(channel)
    base = f"http://127.0.0.1:{server.rest_port}"
    try:
        async with aiohttp.ClientSession() as http:
            assert (await _status(http, "GET", f"{base}/readyz"))[0] == 200
            assert (await _status(http, "POST", f"{base}/v1/jobs/poll"))[0] == 200

            await asyncio.to_thread(database.stop)

            status, retry_after, body = await _status(http, "POST", f"{base}/v1/jobs/poll")
            assert (status, retry_after) == (503, "2")
            assert json.loads(body)["error"] == "unavailable"
            assert "database unavailable" in json.loads(body)["reason"]
            status, retry_after, _ = await _status(http, "GET", f"{base}/readyz")
            assert (status, retry_after) == (503, "2")
            assert (await _status(http, "GET", f"{base}/healthz"))[0] == 200  # liveness only
            status, retry_after, _ = await _status(http, "GET", f"{base}/v1/admin/keys")
            assert (status, retry_after) == (503, "2")  # the key store too
            with pytest.raises(GRPCError) as caught:
                await stub.poll_jobs(pb.PollJobsRequest(worker_id="w", job_types=["t"]))
            assert caught.value.status is Status.UNAVAILABLE
            assert "database unavailable" in (caught.value.message or "")

            await asyncio.to_thread(database.start, port)

            # no restart of the engine: its pool opens new connections by itself
            for _ in range(200):
                if (await _status(http, "GET", f"{base}/readyz"))[0] == 200:
                    break
                await asyncio.sleep(0.1)
            assert (await _status(http, "POST", f"{base}/v1/jobs/poll"))[0] == 200
            await stub.poll_jobs(pb.PollJobsRequest(worker_id="w", job_types=["t"]))
    finally:
        channel.close()
        await server.stop()
