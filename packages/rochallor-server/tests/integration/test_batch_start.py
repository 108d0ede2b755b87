"""``POST /v1/instances/batch`` on a real PostgreSQL: each item as a single start answers it."""

from __future__ import annotations

import asyncio

import asyncpg

from rochallor_server.app import Server
from rochallor_server.engine import limits

from .client import TERMINAL, Api
from .test_scenarios import END, task, wf

ONE_TASK = wf("t-batch", task("a", "batch-a", "end"), END)


async def test_batch_start_answers_each_item_as_the_single_start_would(api: Api) -> None:
    await api.upload(ONE_TASK)
    items: list[dict[str, object]] = [
        {"definitionId": "t-batch", "variables": {"n": n}, "businessKey": f"k{n}"} for n in range(4)
    ]
    items.insert(1, {"definitionId": "no-such-definition"})
    items.insert(3, {"definitionId": "t-batch", "variables": [1, 2]})
    too_long = "x" * (limits.MAX_IDENTIFIER_LENGTH + 1)
    items.insert(4, {"definitionId": "t-batch", "businessKey": too_long})
    items.append({"definitionId": "t-batch", "definitionVersion": 7})
    result = await api.ok("POST", "/v1/instances/batch", {"instances": items})
    results = result["results"]
    assert [r["status"] for r in results] == [201, 404, 201, 400, 400, 201, 201, 404]
    assert results[1]["error"] == "not-found"
    assert results[3]["reason"] == "instances[3]: variables must be a JSON object"
    assert results[4]["reason"] == (
        f"businessKey must be at most {limits.MAX_IDENTIFIER_LENGTH} characters"
    )
    started = [r["instance"] for r in results if r["status"] == 201]
    assert [i["businessKey"] for i in started] == ["k0", "k1", "k2", "k3"]
    assert [i["variables"]["n"] for i in started] == [0, 1, 2, 3]
    # Each started instance is the instance a single start returns, and it runs.
    single = await api.ok(
        "POST",
        "/v1/instances",
        {"definitionId": "t-batch", "variables": {"n": 9}, "businessKey": "k9"},
        expect=201,
    )
    assert set(started[0]) == set(single)
    assert started[0]["status"] == single["status"] == "ACTIVE"
    jobs = await api.poll(["batch-a"], max_jobs=10)
    assert sorted(j["instanceId"] for j in jobs) == sorted(
        [i["id"] for i in started] + [single["id"]]
    )
    for job in jobs:
        assert await api.complete(job["id"], {}) == 204
    for instance in started:
        done = await api.wait_until(instance["id"], lambda i: i["status"] in TERMINAL)
        assert done["status"] == "COMPLETED"


async def test_batch_start_refuses_a_malformed_request_whole(api: Api, server: Server) -> None:
    await api.upload(ONE_TASK)
    cases: list[tuple[object, str]] = [
        ({}, "instances must not be empty"),
        ({"instances": []}, "instances must not be empty"),
        ({"instances": {"definitionId": "t-batch"}}, "instances must be an array of objects"),
        ({"instances": ["t-batch"]}, "instances must be an array of objects"),
        (
            {"instances": [{"definitionId": "t-batch"}] * 101},
            "at most 100 instances per request",
        ),
    ]
    for body, reason in cases:
        status, answer = await api.call("POST", "/v1/instances/batch", body)
        assert (status, answer["reason"]) == (400, reason), body
    status, answer = await api.call("POST", "/v1/instances/batch", raw=b"{broken")
    assert status == 400
    assert answer["reason"].startswith("invalid request body")
    # Nothing was started by any of them.
    assert server.dsn is not None
    conn = await asyncpg.connect(server.dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM workflow_instance") == 0
    finally:
        await conn.close()


async def test_concurrent_batches_start_every_instance_once(api: Api, server: Server) -> None:
    await api.upload(ONE_TASK)
    batches = [
        [{"definitionId": "t-batch", "variables": {"batch": b, "n": n}} for n in range(50)]
        for b in range(6)
    ]
    answers = await asyncio.gather(
        *(api.ok("POST", "/v1/instances/batch", {"instances": items}) for items in batches)
    )
    ids = [r["instance"]["id"] for answer in answers for r in answer["results"]]
    assert all(r["status"] == 201 for answer in answers for r in answer["results"])
    assert len(ids) == len(set(ids)) == 300
    assert server.dsn is not None
    conn = await asyncpg.connect(server.dsn)
    try:
        rows = await conn.fetch(
            "SELECT i.id, count(j.id) AS jobs FROM workflow_instance i"
            " LEFT JOIN job j ON j.instance_id = i.id GROUP BY i.id"
        )
    finally:
        await conn.close()
    assert sorted(r["id"] for r in rows) == sorted(ids)
    assert all(r["jobs"] == 1 for r in rows)
