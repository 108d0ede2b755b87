"""The operations endpoints' parsing and encoding (``docs/server.md`` "Operations endpoints")."""

from __future__ import annotations

import datetime as dt

import pytest
from rest_fakes import T0, T1, Client, FakeService

from rochallor_server.service.ports import InstanceFilter


async def test_list_and_counts_parse_the_new_filters(client: Client, service: FakeService) -> None:
    query = (
        "definitionId=d&definitionVersion=3&businessKey=k&status=FAILED"
        "&startedAfter=2026-03-01T12:00:00Z&startedBefore=2026-03-01T14:00:00%2B02:00"
    )
    response = await client.get(f"/v1/instances?{query}")
    assert response.status == 200
    expected = InstanceFilter(
        definition_id="d",
        status="FAILED",
        business_key="k",
        definition_version=3,
        started_after=dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC),
        started_before=dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC),
    )
    assert service.last("list_instances")["filter"] == expected

    response = await client.get(f"/v1/instances/counts?{query}")
    assert response.status == 200
    assert service.last("count_instances")["filter"] == InstanceFilter(
        definition_id="d",
        business_key="k",
        definition_version=3,
        started_after=expected.started_after,
        started_before=expected.started_before,
    )
    body = await response.json()
    assert body == {
        "counts": {"ACTIVE": 1, "WAITING": 1, "COMPLETED": 1, "FAILED": 1, "CANCELLED": 1},
        "total": 5,
    }


async def test_an_unencoded_plus_in_an_offset_is_read_as_plus(
    client: Client, service: FakeService
) -> None:
    response = await client.get("/v1/instances?startedAfter=2026-03-01T14:00:00+02:00")
    assert response.status == 200
    after = service.last("list_instances")["filter"].started_after
    assert after == dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("definitionVersion=0", "definitionVersion must be a positive integer"),
        ("definitionVersion=1.5", "definitionVersion must be a positive integer"),
        ("startedAfter=yesterday", "startedAfter must be an RFC 3339 timestamp"),
        (
            "startedBefore=2026-03-01T12:00:00",
            "startedBefore must be an RFC 3339 timestamp with an offset",
        ),
    ],
)
async def test_bad_filters_are_400_naming_the_parameter(
    client: Client, service: FakeService, query: str, reason: str
) -> None:
    for path in ("/v1/instances", "/v1/instances/counts"):
        response = await client.get(f"{path}?{query}")
        assert response.status == 400
        assert (await response.json())["reason"] == reason
    assert not service.calls


async def test_retry_passes_the_variables_and_answers_the_instance(
    client: Client, service: FakeService
) -> None:
    response = await client.post("/v1/instances/i-1/retry", json={"variables": {"card": "x"}})
    assert response.status == 200
    assert (await response.json())["status"] == "ACTIVE"
    assert service.last("retry_instance") == {"instance_id": "i-1", "variables": {"card": "x"}}
    response = await client.post("/v1/instances/i-2/retry")
    assert response.status == 200
    assert service.last("retry_instance") == {"instance_id": "i-2", "variables": None}


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{}", "exactly one of instanceIds and filter is required"),
        (b'{"instanceIds": ["a"], "filter": {}}',
         "exactly one of instanceIds and filter is required"),
        (b'{"instanceIds": []}', "instanceIds must hold 1 to 500 ids"),
        (b'{"instanceIds": [1]}', "instanceIds must be an array of strings"),
        (b'{"filter": {}, "limit": 0}', "limit must be between 1 and 500"),
        (b'{"filter": {}, "limit": 501}', "limit must be between 1 and 500"),
        (b'{"filter": {"status": "ACTIVE"}}', "filter.status must be FAILED when given"),
        (b'{"filter": {"definitionVersion": "2"}}',
         "filter.definitionVersion must be a positive integer"),
        (b'{"filter": {"definitionId": 5}}', "filter.definitionId must be a string"),
        (b'{"filter": {}, "variables": []}', "variables must be a JSON object"),
    ],
)  # fmt: skip
async def test_bulk_retry_rejects_bad_bodies(
    client: Client, service: FakeService, body: bytes, reason: str
) -> None:
    response = await client.post("/v1/instances/retry", data=body)
    assert response.status == 400
    assert (await response.json())["reason"] == reason
    assert not service.called("retry_instances")


async def test_bulk_retry_answers_each_instance(client: Client, service: FakeService) -> None:
    body = {"filter": {"definitionId": "d", "definitionVersion": 2, "status": "FAILED"}, "limit": 7}
    response = await client.post("/v1/instances/retry", json=body)

    assert response.status == 200
    answer = await response.json()
    assert answer["matched"] == 2
    ok, refused = answer["results"]
    assert (ok["instanceId"], ok["status"], ok["instance"]["status"]) == ("i1", 200, "ACTIVE")
    assert refused == {
        "instanceId": "i2",
        "status": 409,
        "error": "conflict",
        "reason": "instance is ACTIVE",
    }
    call = service.last("retry_instances")
    assert call["filter"] == InstanceFilter(definition_id="d", definition_version=2)
    assert (call["instance_ids"], call["limit"]) == (None, 7)


async def test_job_queues_give_the_age_of_the_oldest_waiting_job(
    client: Client, service: FakeService
) -> None:
    response = await client.get("/v1/jobs/queues?workerWindowSeconds=60")

    assert response.status == 200
    assert service.last("job_queues") == {"worker_window": dt.timedelta(seconds=60)}
    assert await response.json() == {
        "items": [
            {
                "jobType": "payment",
                "unlocked": 2,
                "locked": 1,
                "oldestUnlockedAt": "2025-03-01T12:34:56.789012Z",
                "oldestUnlockedAgeSeconds": (T1 - T0).total_seconds(),
                "exhausted": 1,
                "workers": [{"workerId": "w-1", "lastSeenAt": "2025-03-01T12:35:00Z"}],
            }
        ],
        "workerWindowSeconds": 60,
    }


async def test_versions_audit_links_and_exhausted_jobs_shapes(
    client: Client, service: FakeService
) -> None:
    versions = await (await client.get("/v1/definitions/LOS::loan/versions")).json()
    assert versions["items"][0]["instances"] == {
        "ACTIVE": 0,
        "WAITING": 0,
        "COMPLETED": 3,
        "FAILED": 0,
        "CANCELLED": 0,
    }
    audit = await (await client.get("/v1/instances/i/audit?afterId=5&limit=9")).json()
    assert audit == {
        "items": [
            {
                "id": 7,
                "at": "2025-03-01T12:35:00Z",
                "actor": "w-1",
                "kind": "job-completed",
                "detail": {"jobId": "j"},
                "principal": None,
            }
        ]
    }
    assert service.last("instance_audit") == {"instance_id": "i", "after_id": 5, "limit": 9}
    links = await (await client.get("/v1/instances/i/links")).json()
    assert links == {"parent": "p", "children": ["c1", "c2"]}
    page = await (await client.get("/v1/jobs/exhausted?jobType=payment&pageSize=5")).json()
    assert page["total"] == 1
    assert page["items"][0]["errorMessage"] == "card declined"
    assert service.last("exhausted_jobs") == {"job_type": "payment", "page": 0, "page_size": 5}


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("startedAfter=", "startedAfter must be an RFC 3339 timestamp"),
        ("definitionVersion=", "definitionVersion must be a positive integer"),
        ("definitionVersion=2147483648", "definitionVersion must be a positive integer"),
    ],
)
async def test_empty_or_out_of_range_filters_are_refused(
    client: Client, service: FakeService, query: str, reason: str
) -> None:
    response = await client.get(f"/v1/instances/counts?{query}")
    assert response.status == 400
    assert (await response.json())["reason"] == reason


async def test_timestamps_in_any_case_and_leap_seconds(
    client: Client, service: FakeService
) -> None:
    response = await client.get("/v1/instances?startedBefore=2026-12-31t23:59:60z")
    assert response.status == 200
    before = service.last("list_instances")["filter"].started_before
    assert before == dt.datetime(2026, 12, 31, 23, 59, 59, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("afterId=-1", "afterId must be an integer from 0 to 9223372036854775807"),
        ("afterId=x", "afterId must be an integer from 0 to 9223372036854775807"),
        ("limit=0", "limit must be an integer from 1 to 1000"),
        ("limit=null", "limit must be an integer from 1 to 1000"),
    ],
)
async def test_audit_paging_is_checked(
    client: Client, service: FakeService, query: str, reason: str
) -> None:
    response = await client.get(f"/v1/instances/i/audit?{query}")
    assert response.status == 400
    assert (await response.json())["reason"] == reason
    assert not service.called("instance_audit")
