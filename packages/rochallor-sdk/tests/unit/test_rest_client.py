"""RestClient against a local aiohttp app that records what it receives."""

from __future__ import annotations

import datetime
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from rochallor_sdk import ApiError, Conflict, LeaseLost, NotFound, RestClient, TransportError

JOB = {
    "id": "01JOB",
    "jobType": "charge",
    "instanceId": "01INST",
    "stepId": "charge-step",
    "stepExecutionId": "01EXEC",
    "status": "LOCKED",
    "workerId": "w",
    "retriesRemaining": 2,
    "variables": {"orderId": "o-1", "amount": 100},
    "lockExpiresAt": "2025-03-01T12:34:56.789012Z",
}


class Recorder:
    def __init__(self) -> None:
        self.requests: list[tuple[str, str, str, Any]] = []
        self.responses: dict[tuple[str, str], web.Response] = {}

    async def handle(self, request: web.Request) -> web.Response:
        text = await request.text()
        body = json.loads(text) if text else None
        self.requests.append((request.method, request.raw_path, request.path, body))
        response = self.responses.get((request.method, request.path))
        if response is None:
            return web.Response(status=204)
        return response


def json_response(status: int, body: Any) -> web.Response:
    return web.Response(status=status, text=json.dumps(body), content_type="application/json")


@pytest.fixture
async def server() -> AsyncIterator[tuple[Recorder, RestClient]]:
    recorder = Recorder()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", recorder.handle)
    async with TestServer(app) as test_server, RestClient(str(test_server.make_url(""))) as client:
        yield recorder, client


async def test_poll_sends_the_contract_body_and_converts_jobs(
    server: tuple[Recorder, RestClient],
) -> None:
    recorder, client = server
    recorder.responses[("POST", "/v1/jobs/poll")] = json_response(200, {"jobs": [JOB]})
    jobs = await client.poll(worker_id="w", job_types=["charge", "ship"], max_jobs=5, wait=2.5)
    assert recorder.requests == [
        (
            "POST",
            "/v1/jobs/poll",
            "/v1/jobs/poll",
            {"workerId": "w", "jobTypes": ["charge", "ship"], "maxJobs": 5, "waitMs": 2500},
        )
    ]
    (job,) = jobs
    assert job.id == "01JOB" and job.step_id == "charge-step" and job.retries_remaining == 2
    assert job.variables == {"orderId": "o-1", "amount": 100}
    assert job.lock_expires_at == datetime.datetime(
        2025, 3, 1, 12, 34, 56, 789012, tzinfo=datetime.UTC
    )


async def test_poll_without_long_poll_omits_wait_ms_and_accepts_null_jobs(
    server: tuple[Recorder, RestClient],
) -> None:
    recorder, client = server
    recorder.responses[("POST", "/v1/jobs/poll")] = json_response(200, {"jobs": None})
    assert await client.poll(worker_id="w", job_types=["a"], max_jobs=1, wait=0) == []
    assert "waitMs" not in recorder.requests[0][3]


async def test_complete_fail_and_extend_bodies(server: tuple[Recorder, RestClient]) -> None:
    recorder, client = server
    recorder.responses[("POST", "/v1/jobs/j1/extend")] = json_response(
        200, {"lockExpiresAt": "2030-01-01T00:00:30+00:00"}
    )
    await client.complete("j1", worker_id="w", variables={"x": 1})
    await client.complete("j1", worker_id="w", variables=None)
    await client.fail("j1", worker_id="w", error_message="nope", retryable=True)
    expires = await client.extend_lease("j1", "w")
    assert [(m, p, b) for m, _, p, b in recorder.requests] == [
        ("POST", "/v1/jobs/j1/complete", {"workerId": "w", "variables": {"x": 1}}),
        ("POST", "/v1/jobs/j1/complete", {"workerId": "w", "variables": {}}),
        (
            "POST",
            "/v1/jobs/j1/fail",
            {"workerId": "w", "errorMessage": "nope", "retryable": True},
        ),
        ("POST", "/v1/jobs/j1/extend", {"workerId": "w"}),
    ]
    assert expires == datetime.datetime(2030, 1, 1, 0, 0, 30, tzinfo=datetime.UTC)


@pytest.mark.parametrize("status", [409, 404])
async def test_extend_refused_is_lease_lost(
    server: tuple[Recorder, RestClient], status: int
) -> None:
    recorder, client = server
    recorder.responses[("POST", "/v1/jobs/j1/extend")] = json_response(
        status, {"error": "conflict", "reason": "lease held by another worker"}
    )
    with pytest.raises(LeaseLost) as info:
        await client.extend_lease("j1", "w")
    assert info.value.job_id == "j1"
    assert "lease held by another worker" in str(info.value)


async def test_error_bodies_map_to_typed_errors(server: tuple[Recorder, RestClient]) -> None:
    recorder, client = server
    recorder.responses[("GET", "/v1/instances/nope")] = json_response(
        404, {"error": "not-found", "reason": 'instance "nope" not found'}
    )
    recorder.responses[("POST", "/v1/instances/i1/cancel")] = json_response(
        409, {"error": "conflict", "reason": "instance is in a terminal state"}
    )
    recorder.responses[("POST", "/v1/jobs/poll")] = web.Response(status=500, text="oops")
    with pytest.raises(NotFound) as not_found:
        await client.get_instance("nope")
    assert (not_found.value.status, not_found.value.code) == (404, "not-found")
    assert not_found.value.reason == 'instance "nope" not found'
    with pytest.raises(Conflict):
        await client.cancel_instance("i1", "twice")
    with pytest.raises(ApiError) as server_error:
        await client.poll(worker_id="w", job_types=["a"], max_jobs=1, wait=0)
    assert server_error.value.status == 500 and server_error.value.reason == "oops"


async def test_unreachable_engine_is_a_transport_error() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with RestClient(f"http://127.0.0.1:{port}", request_timeout=2) as client:
        with pytest.raises(TransportError) as info:
            await client.poll(worker_id="w", job_types=["a"], max_jobs=1, wait=0)
    assert info.value.operation == "poll"


async def test_admin_calls_use_the_documented_paths(server: tuple[Recorder, RestClient]) -> None:
    recorder, client = server
    summary = {
        "id": "LOS::loan",
        "version": 1,
        "name": "Loan",
        "uploadedAt": "2025-01-01T00:00:00Z",
    }
    instance = {"id": "i1", "status": "ACTIVE", "variables": {}, "currentStepIds": []}
    recorder.responses[("POST", "/v1/definitions")] = json_response(201, summary)
    recorder.responses[("GET", "/v1/definitions/LOS::loan")] = json_response(200, {"id": "x"})
    recorder.responses[("GET", "/v1/definitions/LOS::loan/versions/2")] = json_response(
        200, {"id": "x", "version": 2}
    )
    recorder.responses[("GET", "/v1/definitions")] = json_response(
        200, {"items": [summary], "total": 1}
    )
    recorder.responses[("POST", "/v1/instances")] = json_response(201, instance)
    recorder.responses[("GET", "/v1/instances")] = json_response(200, {"items": None, "total": 0})
    recorder.responses[("GET", "/v1/instances/i1")] = json_response(200, instance)
    recorder.responses[("GET", "/v1/instances/i1/history")] = json_response(
        200, {"items": [{"id": "e1", "stepId": "a"}]}
    )
    recorder.responses[("POST", "/v1/instances/i1/cancel")] = json_response(200, instance)

    assert await client.upload_definition({"id": "LOS::loan", "name": "Loan", "steps": []}) == (
        summary
    )
    await client.get_definition("LOS::loan")
    assert (await client.get_definition("LOS::loan", 2))["version"] == 2
    assert (await client.list_definitions(keyword="lo", page=1, page_size=5))["total"] == 1
    await client.start_instance("LOS::loan", {"a": 1}, version=2, business_key="bk")
    assert await client.list_instances(status="ACTIVE") == {"items": [], "total": 0}
    await client.get_instance("i1")
    assert await client.get_history("i1") == [{"id": "e1", "stepId": "a"}]
    await client.cancel_instance("i1", "no longer needed")
    await client.complete_user_task("i1", "approve", {"ok": True}, worker_id="alice")
    await client.signal("i1", "wait-payment", {"paid": True})

    seen = [(m, raw, b) for m, raw, _, b in recorder.requests]
    assert seen == [
        ("POST", "/v1/definitions", {"id": "LOS::loan", "name": "Loan", "steps": []}),
        ("GET", "/v1/definitions/LOS::loan", None),
        ("GET", "/v1/definitions/LOS::loan/versions/2", None),
        ("GET", "/v1/definitions?page=1&pageSize=5&keyword=lo", None),
        (
            "POST",
            "/v1/instances",
            {
                "definitionId": "LOS::loan",
                "variables": {"a": 1},
                "definitionVersion": 2,
                "businessKey": "bk",
            },
        ),
        ("GET", "/v1/instances?page=0&pageSize=20&status=ACTIVE", None),
        ("GET", "/v1/instances/i1", None),
        ("GET", "/v1/instances/i1/history", None),
        ("POST", "/v1/instances/i1/cancel", {"reason": "no longer needed"}),
        (
            "POST",
            "/v1/instances/i1/user-tasks/approve/complete",
            {"variables": {"ok": True}, "workerId": "alice"},
        ),
        ("POST", "/v1/instances/i1/signals/wait-payment", {"paid": True}),
    ]


async def test_complete_many_sends_one_request_and_maps_each_result(
    server: tuple[Recorder, RestClient],
) -> None:
    recorder, client = server
    recorder.responses[("POST", "/v1/jobs/batch-complete")] = json_response(
        200,
        {
            "results": [
                {"jobId": "j1", "status": 204},
                {
                    "jobId": "j2",
                    "status": 404,
                    "error": "not-found",
                    "reason": 'job "j2" not found',
                },
                {"jobId": "j3", "status": 409, "error": "conflict", "reason": "not locked"},
                {"jobId": "j4", "status": 500, "error": "internal-error", "reason": "boom"},
            ]
        },
    )
    results = await client.complete_many(
        worker_id="w",
        completions=[("j1", {"x": 1}), ("j2", {}), ("j3", {"y": [1]}), ("j4", {})],
    )
    assert recorder.requests == [
        (
            "POST",
            "/v1/jobs/batch-complete",
            "/v1/jobs/batch-complete",
            {
                "workerId": "w",
                "completions": [
                    {"jobId": "j1", "variables": {"x": 1}},
                    {"jobId": "j2", "variables": {}},
                    {"jobId": "j3", "variables": {"y": [1]}},
                    {"jobId": "j4", "variables": {}},
                ],
            },
        )
    ]
    ok, gone, taken, broken = results
    assert ok is None
    # The errors a single complete call would have raised for each job.
    assert isinstance(gone, NotFound)
    assert (gone.status, gone.code, gone.reason) == (404, "not-found", 'job "j2" not found')
    assert isinstance(taken, Conflict) and taken.status == 409
    assert type(broken) is ApiError and (broken.status, broken.reason) == (500, "boom")
    assert all(e.operation == "complete" for e in (gone, taken, broken) if e is not None)


async def test_complete_many_on_an_engine_without_the_endpoint_raises_not_found(
    server: tuple[Recorder, RestClient],
) -> None:
    recorder, client = server
    recorder.responses[("POST", "/v1/jobs/batch-complete")] = web.Response(
        status=404, text="404 page not found"
    )
    with pytest.raises(NotFound) as info:
        await client.complete_many(worker_id="w", completions=[("j1", {})])
    assert info.value.operation == "complete_many"


async def test_complete_many_refused_or_malformed_answers_are_api_errors(
    server: tuple[Recorder, RestClient],
) -> None:
    recorder, client = server
    recorder.responses[("POST", "/v1/jobs/batch-complete")] = json_response(
        400, {"error": "bad-request", "reason": "completions must not be empty"}
    )
    with pytest.raises(ApiError) as refused:
        await client.complete_many(worker_id="w", completions=[("j1", {})])
    assert (refused.value.status, refused.value.code) == (400, "bad-request")

    recorder.responses[("POST", "/v1/jobs/batch-complete")] = json_response(
        200, {"results": [{"jobId": "j1", "status": 204}]}
    )
    with pytest.raises(ApiError, match="1 results for 2 completions"):
        await client.complete_many(worker_id="w", completions=[("j1", {}), ("j2", {})])

    recorder.responses[("POST", "/v1/jobs/batch-complete")] = json_response(
        200, {"results": [{"jobId": "other", "status": 204}]}
    )
    (mismatch,) = await client.complete_many(worker_id="w", completions=[("j1", {})])
    assert isinstance(mismatch, ApiError) and "no valid result for job j1" in str(mismatch)


async def test_complete_many_limits(server: tuple[Recorder, RestClient]) -> None:
    recorder, client = server
    assert await client.complete_many(worker_id="w", completions=[]) == []
    with pytest.raises(ValueError, match="at most 100"):
        await client.complete_many(worker_id="w", completions=[(f"j{i}", {}) for i in range(101)])
    assert recorder.requests == []


async def test_complete_many_on_an_unreachable_engine_is_a_transport_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with RestClient(f"http://127.0.0.1:{port}", request_timeout=2) as client:
        with pytest.raises(TransportError) as info:
            await client.complete_many(worker_id="w", completions=[("j1", {})])
    assert info.value.operation == "complete_many"
