"""Completions in groups against the real engine (``POST /v1/jobs/batch-complete``)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from rochallor_sdk import NotFound, Registry, Worker, create_client

from ._engine import EngineProcess
from ._support import TRANSPORTS, admin, metric, service_task_flow, settings, wait_for_status

JOBS = 50
HTTP_COUNT = "http_requests_duration_seconds_count"


def rest_calls(engine: EngineProcess, path: str, status: str) -> float:
    return engine.metric(HTTP_COUNT, method="POST", path=path, status=status)


async def test_a_busy_worker_completes_jobs_in_fewer_requests_than_jobs(
    engine: EngineProcess,
) -> None:
    registry = Registry()

    @registry.register("count")
    async def count(ctx: dict[str, Any]) -> dict[str, Any]:
        return {"counted": ctx["variables"]["n"]}

    async with admin(engine.rest_url, "rest") as client:
        await client.upload_definition(service_task_flow("count-flow", "count"))
        instances = await asyncio.gather(
            *(client.start_instance("count-flow", {"n": n}) for n in range(JOBS))
        )
        worker = Worker(
            registry,
            settings=settings(engine_url=engine.rest_url, parallelism=16),
            handle_signals=False,
        )
        async with worker:
            finals = [await wait_for_status(client, i["id"], timeout=30) for i in instances]

    assert [f["status"] for f in finals] == ["COMPLETED"] * JOBS
    assert [f["variables"] for f in finals] == [{"n": n, "counted": n} for n in range(JOBS)]
    assert metric(worker, "rochallor_worker_jobs_completed_total", job_type="count") == JOBS
    assert metric(worker, "rochallor_worker_report_errors_total", operation="complete") == 0

    batch_requests = await asyncio.to_thread(rest_calls, engine, "/v1/jobs/batch-complete", "200")
    single_requests = await asyncio.to_thread(rest_calls, engine, "/v1/jobs/{id}/complete", "204")
    assert 1 <= batch_requests < JOBS, batch_requests
    assert single_requests == 0


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_complete_many_answers_each_job_as_the_single_call_would(
    engine: EngineProcess, transport: str
) -> None:
    async with admin(engine.url(transport), transport) as client:
        await client.upload_definition(service_task_flow("pair-flow", "pair"))
        first = await client.start_instance("pair-flow", {"n": 1})
        second = await client.start_instance("pair-flow", {"n": 2})
        jobs_client = create_client(engine.url(transport), transport)
        try:
            jobs = await jobs_client.poll(worker_id="w-1", job_types=["pair"], max_jobs=2, wait=0)
            assert len(jobs) == 2
            by_instance = {job.instance_id: job.id for job in jobs}
            results = await jobs_client.complete_many(
                worker_id="w-1",
                completions=[
                    (by_instance[first["id"]], {"done": 1}),
                    ("no-such-job", {}),
                    (by_instance[second["id"]], {"done": 2}),
                ],
            )
            with pytest.raises(NotFound) as single:
                await jobs_client.complete("no-such-job", worker_id="w-1", variables={})
        finally:
            await jobs_client.close()

        ok_first, missing, ok_second = results
        assert ok_first is None and ok_second is None
        assert isinstance(missing, NotFound)
        assert (missing.status, missing.code, missing.reason) == (
            single.value.status,
            single.value.code,
            single.value.reason,
        )
        assert (await wait_for_status(client, first["id"]))["variables"] == {"n": 1, "done": 1}
        assert (await wait_for_status(client, second["id"]))["variables"] == {"n": 2, "done": 2}
