"""Job endpoints (``rest-api.md`` §7) and the lease extension."""

from __future__ import annotations

import json

import pytest
from rest_fakes import Client, ClientFactory, FakeService, job
from yarl import URL

from rochallor_server.config import DispatchMode, EngineSettings
from rochallor_server.engine.model import JobStatus
from rochallor_server.errors import Conflict, NotFound, StorageError

POLL = {"workerId": "w-1", "jobTypes": ["payment"], "maxJobs": 64}


async def test_poll_returns_locked_jobs(client: Client, service: FakeService) -> None:
    response = await client.post("/v1/jobs/poll", json=POLL)

    assert response.status == 200
    raw = await response.read()
    assert json.loads(raw) == {
        "jobs": [
            {
                "id": "01JOB0000000000000000000AA",
                "jobType": "payment",
                "instanceId": "01JNQ7Z3K5V2M8R4T6W9XBCDEF",
                "stepId": "charge",
                "stepExecutionId": "01EXE0000000000000000000AA",
                "status": "LOCKED",
                "workerId": "w-1",
                "lockedAt": "2025-03-01T12:35:00Z",
                "lockExpiresAt": "2025-03-01T12:35:26.5Z",
                "retriesRemaining": 2,
                "variables": {"amount": 100},
                "createdAt": "2025-03-01T12:34:56.789012Z",
            }
        ]
    }
    assert b'"retriesRemaining":2,' in raw
    assert service.last("poll_jobs") == {
        "worker_id": "w-1",
        "job_types": ["payment"],
        "max_jobs": 64,
        "wait_seconds": 0.0,
    }


async def test_job_without_lock_omits_lock_fields(client: Client, service: FakeService) -> None:
    service.results["poll_jobs"] = [
        job(status=JobStatus.UNLOCKED, worker_id=None, locked_at=None, lock_expires_at=None)
    ]

    response = await client.post("/v1/jobs/poll", json=POLL)

    (item,) = (await response.json())["jobs"]
    assert "workerId" not in item and "lockedAt" not in item and "lockExpiresAt" not in item


async def test_poll_with_no_job_answers_an_empty_array(
    client: Client, service: FakeService
) -> None:
    service.results["poll_jobs"] = []

    response = await client.post("/v1/jobs/poll", json=POLL)

    assert await response.read() == b'{"jobs":[]}'


@pytest.mark.parametrize(
    ("fields", "max_jobs", "wait_seconds"),
    [
        ({}, 10, 0.0),
        ({"maxJobs": None, "waitMs": None}, 10, 0.0),
        ({"maxJobs": 0}, 10, 0.0),
        ({"maxJobs": -3}, 10, 0.0),
        ({"maxJobs": 1}, 1, 0.0),
        ({"maxJobs": 100}, 100, 0.0),
        ({"maxJobs": 5000}, 5000, 0.0),  # the service clamps it (test_service.py)
        ({"waitMs": 1500}, 10, 1.5),
        ({"waitMs": 0}, 10, 0.0),
        ({"leaseSeconds": 3600, "somethingElse": True}, 10, 0.0),
        ({"leaseSeconds": "ignored"}, 10, 0.0),
    ],
)
async def test_poll_bounds(
    client: Client,
    service: FakeService,
    fields: dict[str, object],
    max_jobs: int,
    wait_seconds: float,
) -> None:
    response = await client.post(
        "/v1/jobs/poll", json={"workerId": "w", "jobTypes": ["t"], **fields}
    )

    assert response.status == 200
    call = service.last("poll_jobs")
    assert (call["max_jobs"], call["wait_seconds"]) == (max_jobs, wait_seconds)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "invalid request body: EOF"),
        (b'"w"', "invalid request body: expected a JSON object"),
        (b'{"workerId": 1, "jobTypes": ["t"]}', "workerId must be a string"),
        (b'{"workerId": "w", "jobTypes": "t"}', "jobTypes must be an array of strings"),
        (b'{"workerId": "w", "jobTypes": [1]}', "jobTypes must be an array of strings"),
        (b'{"workerId": "w", "jobTypes": ["t"], "maxJobs": "5"}', "maxJobs must be an integer"),
        (b'{"workerId": "w", "jobTypes": ["t"], "maxJobs": 1.5}', "maxJobs must be an integer"),
        (b'{"workerId": "w", "jobTypes": ["t"], "waitMs": -1}', "waitMs must not be negative"),
        (b'{"workerId": "w", "jobTypes": ["t"], "waitMs": true}', "waitMs must be an integer"),
    ],
)
async def test_poll_rejects_bad_bodies(
    client: Client, service: FakeService, raw: bytes, reason: str
) -> None:
    response = await client.post("/v1/jobs/poll", data=raw)

    assert response.status == 400
    assert await response.json() == {"error": "bad-request", "reason": reason, "message": reason}
    assert not service.calls


async def test_poll_storage_failure_is_500(client: Client, service: FakeService) -> None:
    service.fail("poll_jobs", StorageError("gone"))

    assert (await client.post("/v1/jobs/poll", json=POLL)).status == 500


@pytest.mark.parametrize("raw", [json.dumps(POLL).encode(), b"", b"garbage"])
async def test_poll_is_gone_in_kafka_outbox_mode(make_client: ClientFactory, raw: bytes) -> None:
    service = FakeService(EngineSettings(dispatch_mode=DispatchMode.KAFKA_OUTBOX))
    client = await make_client(service)

    response = await client.post("/v1/jobs/poll", data=raw)

    assert response.status == 410
    assert response.headers["Content-Type"] == "application/json"
    assert await response.read() == (
        b'{"error":"poll path disabled","dispatch_mode":"kafka_outbox",'
        b'"hint":"consume directly from Kafka topic workflow.jobs.<jobType>"}'
    )
    assert not service.calls


async def test_kafka_outbox_mode_still_completes_jobs(make_client: ClientFactory) -> None:
    service = FakeService(EngineSettings(dispatch_mode=DispatchMode.KAFKA_OUTBOX))
    client = await make_client(service)

    assert (await client.post("/v1/jobs/j-1/complete", json={})).status == 204


async def test_complete_job(client: Client, service: FakeService) -> None:
    response = await client.post(
        "/v1/jobs/j-1/complete", json={"workerId": "w-1", "variables": {"paid": True}}
    )

    assert response.status == 204
    assert await response.read() == b""
    assert service.last("complete_job") == {
        "job_id": "j-1",
        "worker_id": "w-1",
        "variables": {"paid": True},
    }


@pytest.mark.parametrize("raw", [b"{}", b'{"variables": null}', b'{"workerId": null}', b"null"])
async def test_complete_job_minimal_bodies(
    client: Client, service: FakeService, raw: bytes
) -> None:
    response = await client.post("/v1/jobs/j-1/complete", data=raw)

    assert response.status == 204
    assert service.last("complete_job") == {"job_id": "j-1", "worker_id": None, "variables": None}


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "invalid request body: EOF"),
        (b'{"variables": [1]}', "variables must be a JSON object"),
        (b'{"variables": 3}', "variables must be a JSON object"),
        (b'{"workerId": 3}', "workerId must be a string"),
    ],
)
async def test_complete_job_rejects_bad_bodies(
    client: Client, service: FakeService, raw: bytes, reason: str
) -> None:
    response = await client.post("/v1/jobs/j-1/complete", data=raw)

    assert response.status == 400
    assert (await response.json())["reason"] == reason
    assert not service.calls


@pytest.mark.parametrize(
    ("error", "status"), [(NotFound('job "j-1" not found'), 404), (StorageError("gone"), 500)]
)
async def test_complete_job_errors(
    client: Client, service: FakeService, error: Exception, status: int
) -> None:
    service.fail("complete_job", error)

    assert (await client.post("/v1/jobs/j-1/complete", json={})).status == status


async def test_fail_job(client: Client, service: FakeService) -> None:
    response = await client.post(
        "/v1/jobs/j-1/fail", json={"workerId": "w-1", "errorMessage": "boom", "retryable": True}
    )

    assert response.status == 204
    assert await response.read() == b""
    assert service.last("fail_job") == {
        "job_id": "j-1",
        "worker_id": "w-1",
        "error_message": "boom",
        "retryable": True,
    }


@pytest.mark.parametrize("raw", [b"{}", b'{"errorMessage": null, "retryable": null}'])
async def test_fail_job_defaults(client: Client, service: FakeService, raw: bytes) -> None:
    response = await client.post("/v1/jobs/j-1/fail", data=raw)

    assert response.status == 204
    assert service.last("fail_job") == {
        "job_id": "j-1",
        "worker_id": None,
        "error_message": None,
        "retryable": False,
    }


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "invalid request body: EOF"),
        (b'{"retryable": "yes"}', "retryable must be a boolean"),
        (b'{"errorMessage": 5}', "errorMessage must be a string"),
    ],
)
async def test_fail_job_rejects_bad_bodies(
    client: Client, service: FakeService, raw: bytes, reason: str
) -> None:
    response = await client.post("/v1/jobs/j-1/fail", data=raw)

    assert response.status == 400
    assert (await response.json())["reason"] == reason


@pytest.mark.parametrize(
    ("error", "status"), [(NotFound('job "j-1" not found'), 404), (StorageError("gone"), 500)]
)
async def test_fail_job_errors(
    client: Client, service: FakeService, error: Exception, status: int
) -> None:
    service.fail("fail_job", error)

    assert (await client.post("/v1/jobs/j-1/fail", json={})).status == status


async def test_job_ids_are_percent_decoded(client: Client, service: FakeService) -> None:
    await client.post(URL("/v1/jobs/j%3A1/complete", encoded=True), json={})
    await client.post(URL("/v1/jobs/j%3A2/fail", encoded=True), json={})
    await client.post(URL("/v1/jobs/j%3A3/extend", encoded=True), json={"workerId": "w"})

    assert service.last("complete_job")["job_id"] == "j:1"
    assert service.last("fail_job")["job_id"] == "j:2"
    assert service.last("extend_job_lease")["job_id"] == "j:3"


async def test_extend_lease(client: Client, service: FakeService) -> None:
    response = await client.post("/v1/jobs/j-1/extend", json={"workerId": "w-1"})

    assert response.status == 200
    assert await response.json() == {"lockExpiresAt": "2025-03-01T12:35:26.5Z"}
    assert service.last("extend_job_lease") == {"job_id": "j-1", "worker_id": "w-1"}


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "invalid request body: EOF"),
        (b'{"workerId": 1}', "workerId must be a string"),
    ],
)
async def test_extend_lease_rejects_bad_bodies(
    client: Client, service: FakeService, raw: bytes, reason: str
) -> None:
    response = await client.post("/v1/jobs/j-1/extend", data=raw)

    assert response.status == 400
    assert (await response.json())["reason"] == reason
    assert not service.calls


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (NotFound('job "j-1" not found'), 404, "not-found"),
        (Conflict("the job is not locked by this worker"), 409, "conflict"),
        (StorageError("gone"), 500, "internal-error"),
    ],
)
async def test_extend_lease_errors(
    client: Client, service: FakeService, error: Exception, status: int, code: str
) -> None:
    service.fail("extend_job_lease", error)

    response = await client.post("/v1/jobs/j-1/extend", json={"workerId": "w-1"})

    assert response.status == status
    assert (await response.json())["error"] == code
