"""``WE_PROCESSES=2``: two engine processes on one set of ports and one database."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import aiohttp
import asyncpg

from rochallor_server.testing import EngineProcess

from .test_scenarios import END, task, wf

ONE_TASK = wf("t-procs", task("a", "procs-a", "end"), END)


def _children(supervisor: int) -> list[int]:
    """The pids of the supervisor's child processes (Linux ``/proc``)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == supervisor:
            found.append(int(entry))
    return found


def _alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


async def _wait_for(session: aiohttp.ClientSession, url: str) -> None:
    for _ in range(600):
        try:
            async with session.get(url) as response:
                assert response.status == 200
                return
        except aiohttp.ClientConnectorError:
            await asyncio.sleep(0.1)
    raise AssertionError(f"{url} did not answer within 60 s")


async def test_two_processes_share_the_ports_and_the_work(pg_dsn: str, tmp_path: Path) -> None:
    engine = EngineProcess(pg_dsn, tmp_path / "engine.log", env={"WE_PROCESSES": "2"})
    await asyncio.to_thread(engine.start)
    try:
        children = _children(engine.pid)
        assert len(children) == 2, engine.log()
        async with aiohttp.ClientSession() as session:
            # Each process serves its own metrics, on WE_METRICS_PORT + its index; /healthz
            # answered when the first one was ready.
            for offset in (0, 1):
                await _wait_for(session, f"http://127.0.0.1:{engine.metrics_port + offset}/metrics")
            async with session.post(f"{engine.rest_url}/v1/definitions", json=ONE_TASK) as r:
                assert r.status == 201

        # Fresh connections each: the kernel spreads them over both processes.
        async def call(method: str, path: str, body: object) -> tuple[int, object]:
            async with (
                aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s,
                s.request(method, engine.rest_url + path, json=body) as response,
            ):
                return response.status, await response.json() if response.status != 204 else None

        starts = await asyncio.gather(
            *(call("POST", "/v1/instances", {"definitionId": "t-procs"}) for _ in range(40))
        )
        assert all(status == 201 for status, _ in starts)
        claimed: list[str] = []
        while len(claimed) < 40:
            polls = await asyncio.gather(
                *(
                    call("POST", "/v1/jobs/poll", {"workerId": f"w{n}", "jobTypes": ["procs-a"]})
                    for n in range(4)
                )
            )
            batch = [job["id"] for _, answer in polls for job in answer["jobs"]]  # type: ignore[index]
            assert batch, "jobs left unclaimed"
            claimed += batch
            done = await asyncio.gather(
                *(call("POST", f"/v1/jobs/{job}/complete", {}) for job in batch)
            )
            assert [status for status, _ in done] == [204] * len(batch)
        assert len(claimed) == len(set(claimed)) == 40
        conn = await asyncpg.connect(pg_dsn)
        try:
            rows = await conn.fetch("SELECT status, count(*) FROM workflow_instance GROUP BY 1")
        finally:
            await conn.close()
        assert [(r["status"], r["count"]) for r in rows] == [("COMPLETED", 40)]
        # Both processes served requests (each logs its own HTTP metrics).
        served = []
        async with aiohttp.ClientSession() as session:
            for offset in (0, 1):
                url = f"http://127.0.0.1:{engine.metrics_port + offset}/metrics"
                async with session.get(url) as response:
                    served.append('path="/v1/instances"' in await response.text())
        assert served == [True, True]
    finally:
        code = await asyncio.to_thread(engine.stop, 60)
    assert code == 0, engine.log()[-3000:]
    assert not any(_alive(pid) for pid in children)
