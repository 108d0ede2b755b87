"""User-task completion and WAIT signals (``rest-api.md`` §8)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from rest_fakes import Client, FakeService
from yarl import URL

from rochallor_server.errors import BadRequest, Conflict, NotFound, StorageError

USER_TASK = "/v1/instances/i-1/user-tasks/approve/complete"
SIGNAL = "/v1/instances/i-1/signals/go-wait"


@pytest.mark.parametrize(
    ("raw", "variables", "completed_by"),
    [
        (b"", None, None),
        (b"null", None, None),
        (b"{}", None, None),
        (b'{"variables": null}', None, None),
        (b'{"variables": {"ok": true}, "workerId": "alice"}', {"ok": True}, "alice"),
        (b'{"result": {"ok": 1}, "completedBy": "bob"}', {"ok": 1}, "bob"),
        (b'{"variables": null, "result": {"ok": 2}}', {"ok": 2}, None),
        (
            b'{"variables": {"v": 1}, "result": {"r": 1}, "workerId": "w", "completedBy": "c"}',
            {"v": 1},
            "w",
        ),
    ],
)
async def test_complete_user_task_bodies(
    client: Client,
    service: FakeService,
    raw: bytes,
    variables: dict[str, object] | None,
    completed_by: str | None,
) -> None:
    response = await client.post(USER_TASK, data=raw)

    assert response.status == 204
    assert await response.read() == b""
    assert service.last("complete_user_task") == {
        "instance_id": "i-1",
        "step_id": "approve",
        "variables": variables,
        "completed_by": completed_by,
    }


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"[1]", "invalid request body: expected a JSON object"),
        (b'{"variables": [1]}', "variables must be a JSON object"),
        (b'{"result": "x"}', "result must be a JSON object"),
        (b'{"workerId": 5}', "workerId must be a string"),
    ],
)
async def test_complete_user_task_rejects_bad_bodies(
    client: Client, service: FakeService, raw: bytes, reason: str
) -> None:
    response = await client.post(USER_TASK, data=raw)

    assert response.status == 400
    assert (await response.json())["reason"] == reason
    assert not service.calls


async def test_complete_user_task_malformed_body(client: Client, service: FakeService) -> None:
    response = await client.post(USER_TASK, data=b"{oops")

    assert response.status == 400
    assert (await response.json())["reason"].startswith("invalid request body: ")
    assert not service.calls


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (NotFound("workflow instance not found"), 404, "not-found"),
        (NotFound("user task not found"), 404, "not-found"),
        (BadRequest("step type does not match the endpoint"), 400, "bad-request"),
        (Conflict("instance is in a terminal state"), 409, "conflict"),
        (StorageError("gone"), 500, "internal-error"),
    ],
)
async def test_complete_user_task_errors(
    client: Client, service: FakeService, error: Exception, status: int, code: str
) -> None:
    service.fail("complete_user_task", error)

    response = await client.post(USER_TASK, json={"variables": {}})

    assert response.status == status
    body = await response.json()
    assert body["error"] == code
    assert body["reason"] == str(error)


@pytest.mark.parametrize(
    ("raw", "variables"),
    [
        (b"", None),
        (b" ", None),
        (b"null", None),
        (b"{}", {}),
        (b'{"approved": true, "amount": 100}', {"approved": True, "amount": 100}),
    ],
)
async def test_signal_bodies(
    client: Client, service: FakeService, raw: bytes, variables: dict[str, object] | None
) -> None:
    response = await client.post(SIGNAL, data=raw)

    assert response.status == 204
    assert await response.read() == b""
    assert service.last("signal") == {
        "instance_id": "i-1",
        "step_id": "go-wait",
        "variables": variables,
    }


async def test_signal_reads_a_chunked_body(client: Client, service: FakeService) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"approved"'
        yield b": true}"

    response = await client.post(SIGNAL, data=chunks())

    assert response.status == 204
    assert service.last("signal")["variables"] == {"approved": True}


@pytest.mark.parametrize("raw", [b"[1]", b'"x"', b"5", b"true"])
async def test_signal_body_must_be_an_object(
    client: Client, service: FakeService, raw: bytes
) -> None:
    response = await client.post(SIGNAL, data=raw)

    assert response.status == 400
    assert (await response.json())["reason"] == "variables must be a JSON object"
    assert not service.calls


async def test_signal_malformed_body(client: Client, service: FakeService) -> None:
    response = await client.post(SIGNAL, data=b'{"a":')

    assert response.status == 400
    assert (await response.json())["reason"].startswith("invalid request body: ")


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (NotFound("workflow instance not found"), 404, "not-found"),
        (Conflict("wait step is not currently parked on the instance"), 409, "conflict"),
        (BadRequest("step type does not match the endpoint"), 400, "bad-request"),
        (Conflict("instance is in a terminal state"), 409, "conflict"),
        (StorageError("gone"), 500, "internal-error"),
    ],
)
async def test_signal_errors(
    client: Client, service: FakeService, error: Exception, status: int, code: str
) -> None:
    service.fail("signal", error)

    response = await client.post(SIGNAL)

    assert response.status == status
    assert (await response.json())["error"] == code


async def test_resume_path_parameters_are_percent_decoded(
    client: Client, service: FakeService
) -> None:
    await client.post(URL("/v1/instances/i%3A1/user-tasks/LOS%3A%3Aapprove/complete", encoded=True))
    await client.post(URL("/v1/instances/i%3A2/signals/wait%20here", encoded=True))

    call = service.last("complete_user_task")
    assert (call["instance_id"], call["step_id"]) == ("i:1", "LOS::approve")
    call = service.last("signal")
    assert (call["instance_id"], call["step_id"]) == ("i:2", "wait here")
