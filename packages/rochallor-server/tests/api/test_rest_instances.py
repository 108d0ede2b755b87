"""Instance endpoints (``rest-api.md`` §6)."""

from __future__ import annotations

import json

import pytest
from rest_fakes import T1, Client, FakeService, execution, instance
from yarl import URL

from rochallor_server.engine.model import ExecutionStatus, InstanceStatus
from rochallor_server.errors import Conflict, NotFound, StorageError
from rochallor_server.service.ports import InstanceFilter, Page

INSTANCE_ID = "01JNQ7Z3K5V2M8R4T6W9XBCDEF"

WAITING = {
    "id": INSTANCE_ID,
    "definitionId": "LOS::loan",
    "definitionVersion": 2,
    "status": "WAITING",
    "currentStepIds": ["go-wait"],
    "variables": {"amount": 100, "rate": 1.5},
    "startedAt": "2025-03-01T12:34:56.789012Z",
}


async def test_start_answers_201_with_the_instance(client: Client, service: FakeService) -> None:
    response = await client.post(
        "/v1/instances",
        json={
            "definitionId": "LOS::loan",
            "definitionVersion": 2,
            "variables": {"amount": 100},
            "businessKey": "BK-1",
            "unknown": [1, 2],
        },
    )

    assert response.status == 201
    raw = await response.read()
    assert json.loads(raw) == WAITING
    assert b'"amount":100,' in raw and b'"definitionVersion":2,' in raw
    assert service.last("start_instance") == {
        "definition_id": "LOS::loan",
        "version": 2,
        "variables": {"amount": 100},
        "business_key": "BK-1",
    }


@pytest.mark.parametrize("version", [None, 0, -4])
async def test_start_without_positive_version_means_latest(
    client: Client, service: FakeService, version: int | None
) -> None:
    response = await client.post(
        "/v1/instances",
        json={
            "definitionId": "d",
            "definitionVersion": version,
            "variables": None,
            "businessKey": "",
        },
    )

    assert response.status == 201
    # the service reads None, 0 and negative versions as the latest (test_service.py)
    assert service.last("start_instance") == {
        "definition_id": "d",
        "version": version,
        "variables": None,
        "business_key": None,
    }


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "invalid request body: EOF"),
        (b"[1]", "invalid request body: expected a JSON object"),
        (b'{"definitionId": 5}', "definitionId must be a string"),
        (b'{"definitionId": "d", "variables": [1]}', "variables must be a JSON object"),
        (b'{"definitionId": "d", "variables": "x"}', "variables must be a JSON object"),
        (
            b'{"definitionId": "d", "definitionVersion": "2"}',
            "definitionVersion must be an integer",
        ),
        (
            b'{"definitionId": "d", "definitionVersion": 2.5}',
            "definitionVersion must be an integer",
        ),
        (b'{"definitionId": "d", "businessKey": 7}', "businessKey must be a string"),
    ],
)
async def test_start_rejects_bad_bodies(
    client: Client, service: FakeService, raw: bytes, reason: str
) -> None:
    response = await client.post("/v1/instances", data=raw)

    assert response.status == 400
    assert await response.json() == {"error": "bad-request", "reason": reason, "message": reason}
    assert not service.calls


async def test_start_malformed_json(client: Client) -> None:
    response = await client.post("/v1/instances", data=b'{"definitionId": "d",')

    assert response.status == 400
    assert (await response.json())["reason"].startswith("invalid request body: ")


async def test_start_unknown_definition_is_404(client: Client, service: FakeService) -> None:
    service.fail("start_instance", NotFound('definition "d" not found'))

    response = await client.post("/v1/instances", json={"definitionId": "d"})

    assert response.status == 404
    assert (await response.json())["error"] == "not-found"


async def test_start_storage_failure_is_500(client: Client, service: FakeService) -> None:
    service.fail("start_instance", StorageError("deadlock"))

    response = await client.post("/v1/instances", json={"definitionId": "d"})

    assert response.status == 500


async def test_get_instance_prints_optional_fields_when_set(
    client: Client, service: FakeService
) -> None:
    service.results["get_instance"] = instance(
        status=InstanceStatus.CANCELLED,
        completed_at=T1,
        failure_reason="",
        business_key="BK-1",
        current_step_ids=(),
        variables={},
    )

    response = await client.get(f"/v1/instances/{INSTANCE_ID}")

    assert response.status == 200
    assert await response.json() == {
        **WAITING,
        "status": "CANCELLED",
        "currentStepIds": [],
        "variables": {},
        "completedAt": "2025-03-01T12:35:00Z",
        "failureReason": "",
        "businessKey": "BK-1",
    }
    assert service.last("get_instance") == {"instance_id": INSTANCE_ID}


async def test_get_instance_omits_unset_optional_fields(client: Client) -> None:
    response = await client.get(f"/v1/instances/{INSTANCE_ID}")

    assert await response.json() == WAITING


async def test_get_unknown_instance_is_404(client: Client, service: FakeService) -> None:
    service.fail("get_instance", NotFound('instance "nope" not found'))

    response = await client.get("/v1/instances/nope")

    assert response.status == 404
    assert (await response.json())["reason"] == 'instance "nope" not found'


async def test_get_instance_storage_failure_is_500(client: Client, service: FakeService) -> None:
    service.fail("get_instance", StorageError("gone"))

    assert (await client.get("/v1/instances/x")).status == 500


async def test_list_instances_passes_filters(client: Client, service: FakeService) -> None:
    response = await client.get(
        "/v1/instances?definitionId=LOS::loan&status=WAITING&businessKey=BK-1&page=1&pageSize=3"
    )

    assert response.status == 200
    assert await response.json() == {"items": [WAITING], "total": 1}
    assert service.last("list_instances") == {
        "filter": InstanceFilter(definition_id="LOS::loan", status="WAITING", business_key="BK-1"),
        "page": 1,
        "page_size": 3,
    }


async def test_list_instances_without_filters(client: Client, service: FakeService) -> None:
    service.results["list_instances"] = Page(items=[], total=0)

    response = await client.get("/v1/instances?definitionId=&pageSize=999")

    assert await response.read() == b'{"items":[],"total":0}'
    assert service.last("list_instances") == {
        "filter": InstanceFilter(),
        "page": 0,
        "page_size": 999,
    }


async def test_list_instances_storage_failure_is_500(client: Client, service: FakeService) -> None:
    service.fail("list_instances", StorageError("gone"))

    assert (await client.get("/v1/instances")).status == 500


async def test_history_items_have_exactly_nine_camel_case_keys(
    client: Client, service: FakeService
) -> None:
    service.results["history"] = [
        execution(),
        execution(
            id="01EXE0000000000000000000AB",
            step_id="step-b",
            step_type="USER_TASK",
            attempt_number=2,
            status=ExecutionStatus.FAILED,
            ended_at=T1,
            failure_reason="interrupted by boundary timer",
        ),
    ]

    response = await client.get(f"/v1/instances/{INSTANCE_ID}/history")

    assert response.status == 200
    assert await response.json() == {
        "items": [
            {
                "id": "01EXE0000000000000000000AA",
                "instanceId": INSTANCE_ID,
                "stepId": "step-a",
                "stepType": "SERVICE_TASK",
                "attemptNumber": 1,
                "status": "RUNNING",
                "startedAt": "2025-03-01T12:34:56.789012Z",
                "endedAt": None,
                "failureReason": None,
            },
            {
                "id": "01EXE0000000000000000000AB",
                "instanceId": INSTANCE_ID,
                "stepId": "step-b",
                "stepType": "USER_TASK",
                "attemptNumber": 2,
                "status": "FAILED",
                "startedAt": "2025-03-01T12:34:56.789012Z",
                "endedAt": "2025-03-01T12:35:00Z",
                "failureReason": "interrupted by boundary timer",
            },
        ]
    }


async def test_history_of_unknown_instance_is_an_empty_array(
    client: Client, service: FakeService
) -> None:
    service.results["history"] = []

    response = await client.get("/v1/instances/unknown/history")

    assert response.status == 200
    assert await response.read() == b'{"items":[]}'


async def test_history_storage_failure_is_500(client: Client, service: FakeService) -> None:
    service.fail("history", StorageError("gone"))

    assert (await client.get("/v1/instances/x/history")).status == 500


async def test_cancel_returns_the_cancelled_instance(client: Client, service: FakeService) -> None:
    service.results["cancel_instance"] = instance(
        status=InstanceStatus.CANCELLED, completed_at=T1, failure_reason="by test"
    )

    response = await client.post(f"/v1/instances/{INSTANCE_ID}/cancel", json={"reason": "by test"})

    assert response.status == 200
    body = await response.json()
    assert body["status"] == "CANCELLED"
    assert body["failureReason"] == "by test"
    assert body["completedAt"] == "2025-03-01T12:35:00Z"
    assert service.last("cancel_instance") == {"instance_id": INSTANCE_ID, "reason": "by test"}


@pytest.mark.parametrize(
    "raw", [b"", b"null", b"{}", b"not json", b"[1]", b'{"reason": 5}', b'{"reason": null}']
)
async def test_cancel_without_a_usable_body_means_no_reason(
    client: Client, service: FakeService, raw: bytes
) -> None:
    response = await client.post("/v1/instances/i-1/cancel", data=raw)

    assert response.status == 200
    assert service.last("cancel_instance") == {"instance_id": "i-1", "reason": ""}


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (NotFound('instance "i-1" not found'), 404, "not-found"),
        (Conflict("instance is in a terminal state"), 409, "conflict"),
        (StorageError("gone"), 500, "internal-error"),
    ],
)
async def test_cancel_errors(
    client: Client, service: FakeService, error: Exception, status: int, code: str
) -> None:
    service.fail("cancel_instance", error)

    response = await client.post("/v1/instances/i-1/cancel")

    assert response.status == status
    assert (await response.json())["error"] == code


async def test_instance_path_parameters_are_percent_decoded(
    client: Client, service: FakeService
) -> None:
    await client.get(URL("/v1/instances/a%3Ab", encoded=True))
    await client.get(URL("/v1/instances/a%20b/history", encoded=True))
    await client.post(URL("/v1/instances/a%2Fb/cancel", encoded=True))

    assert service.last("get_instance")["instance_id"] == "a:b"
    assert service.last("history")["instance_id"] == "a b"
    assert service.last("cancel_instance")["instance_id"] == "a/b"
