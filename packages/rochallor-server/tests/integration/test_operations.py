"""The operations endpoints (retry, counts, versions, audit, links, job queues) against a real
engine and PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any
from urllib.parse import quote

from rochallor_server.app import Server

from .client import Api
from .test_scenarios import END, task, wf

ORDER = "SHOP::order-fulfilment"


async def _failed_order(api: Api, order: str = "o-1") -> dict[str, Any]:
    """An order-fulfilment instance FAILED at charge-payment (its retry budget spent)."""
    inst = await api.start(ORDER, {"orderId": order}, business_key=order)
    [reserve] = await api.poll(["reserve-stock"], worker="w-stock")
    assert await api.complete(reserve["id"], {"reserved": True}, worker="w-stock") == 204
    for _ in range(2):  # retryCount 1: two attempts
        [charge] = await api.poll(["charge-payment"], worker="w-pay")
        assert charge["instanceId"] == inst["id"]
        assert await api.fail(charge["id"], "card declined", retryable=True, worker="w-pay") == 204
    failed = await api.instance(inst["id"])
    assert failed["status"] == "FAILED", failed
    assert failed["failureReason"] == "card declined"
    return failed


async def test_a_failed_instance_is_retried_from_its_failed_step_and_completes(
    api: Api, order_fulfilment: dict[str, Any]
) -> None:
    await api.upload(order_fulfilment)
    failed = await _failed_order(api)
    queues = await api.ok("GET", "/v1/jobs/queues")
    [charge_queue] = [q for q in queues["items"] if q["jobType"] == "charge-payment"]
    assert charge_queue["exhausted"] == 1
    assert charge_queue["unlocked"] == charge_queue["locked"] == 0
    assert [w["workerId"] for w in charge_queue["workers"]] == ["w-pay"]
    incidents = await api.ok("GET", "/v1/jobs/exhausted?jobType=charge-payment")
    assert incidents["total"] == 1
    [incident] = incidents["items"]
    assert incident["instanceId"] == failed["id"]
    assert incident["stepId"] == "charge-payment"
    assert incident["errorMessage"] == "card declined"
    assert incident["workerId"] == "w-pay"

    retried = await api.ok(
        "POST", f"/v1/instances/{failed['id']}/retry", {"variables": {"card": "new-card"}}
    )

    assert retried["status"] == "ACTIVE"
    assert retried["currentStepIds"] == ["charge-payment"]
    assert "failureReason" not in retried and "completedAt" not in retried
    assert retried["variables"]["card"] == "new-card"
    [job] = await api.poll(["charge-payment"], worker="w-pay")
    assert job["retriesRemaining"] == 1  # the step's full budget again
    assert job["variables"]["card"] == "new-card"
    assert await api.complete(job["id"], {"paymentStatus": "CAPTURED"}, worker="w-pay") == 204
    [dispatch] = await api.poll(["dispatch-order"])
    assert await api.complete(dispatch["id"], {"trackingId": "T-9"}) == 204
    done = await api.instance(failed["id"])
    assert done["status"] == "COMPLETED"

    charges = [h for h in await api.history(failed["id"]) if h["stepId"] == "charge-payment"]
    assert [(h["attemptNumber"], h["status"]) for h in charges] == [
        (1, "FAILED"),
        (2, "COMPLETED"),
    ]
    audit = (await api.ok("GET", f"/v1/instances/{failed['id']}/audit"))["items"]
    kinds = [a["kind"] for a in audit]
    assert kinds.count("job-retried") == 1
    assert (
        kinds.index("job-failed")
        < kinds.index("instance-retried")
        < kinds.index("instance-completed")
    )
    [retry_entry] = [a for a in audit if a["kind"] == "instance-retried"]
    assert retry_entry["actor"] == "api"
    assert retry_entry["detail"]["stepIds"] == ["charge-payment"]
    assert retry_entry["detail"]["variables"] == ["card"]
    assert [a["id"] for a in audit] == sorted(a["id"] for a in audit)
    later = await api.ok("GET", f"/v1/instances/{failed['id']}/audit?afterId={audit[-2]['id']}")
    assert later["items"] == audit[-1:]
    assert (await api.ok("GET", "/v1/jobs/exhausted"))["total"] == 0


async def test_retry_refusals_carry_the_reason_and_change_nothing(
    api: Api, order_fulfilment: dict[str, Any]
) -> None:
    await api.upload(order_fulfilment)
    failed = await _failed_order(api)
    running = await api.start(ORDER)

    status, body = await api.call("POST", f"/v1/instances/{running['id']}/retry")
    assert status == 409
    assert body["reason"] == "instance is ACTIVE: only a FAILED instance can be retried"
    status, body = await api.call("POST", "/v1/instances/01NOPE/retry")
    assert (status, body["error"]) == (404, "not-found")
    status, body = await api.call("POST", f"/v1/instances/{failed['id']}/retry", {"variables": [1]})
    assert (status, body["reason"]) == (400, "variables must be a JSON object")
    assert await api.instance(failed["id"]) == failed


async def test_concurrent_retries_of_one_instance_resume_it_once(
    api: Api, order_fulfilment: dict[str, Any]
) -> None:
    await api.upload(order_fulfilment)
    failed = await _failed_order(api)

    answers = await asyncio.gather(
        *(api.call("POST", f"/v1/instances/{failed['id']}/retry") for _ in range(6))
    )

    statuses = sorted(status for status, _ in answers)
    assert statuses == [200] + [409] * 5, answers
    jobs = await api.poll(["charge-payment"], max_jobs=10)
    assert len(jobs) == 1
    history = await api.history(failed["id"])
    assert [h["status"] for h in history if h["stepId"] == "charge-payment"] == [
        "FAILED",
        "RUNNING",
    ]


async def test_bulk_retry_by_filter_and_by_ids(api: Api) -> None:
    decide = {
        "id": "route",
        "name": "Route",
        "type": "DECISION",
        "conditionalNextSteps": {"approved == true": "end"},
    }
    await api.upload(wf("OPS::bulk", decide, END))
    await api.upload(wf("OPS::other", decide, END))
    failed = [await api.start("OPS::bulk", {"approved": False}, f"bk-{n}") for n in range(3)]
    other = await api.start("OPS::other", {"approved": False})
    assert {i["status"] for i in [*failed, other]} == {"FAILED"}

    answer = await api.ok(
        "POST",
        "/v1/instances/retry",
        {"filter": {"definitionId": "OPS::bulk"}, "variables": {"approved": True}, "limit": 2},
    )

    assert answer["matched"] == 3
    assert [r["status"] for r in answer["results"]] == [200, 200]
    assert {r["instance"]["status"] for r in answer["results"]} == {"COMPLETED"}
    # the newest first: the oldest one is left for the next call
    assert {r["instanceId"] for r in answer["results"]} == {failed[1]["id"], failed[2]["id"]}
    assert (await api.instance(failed[0]["id"]))["status"] == "FAILED"
    assert (await api.instance(other["id"]))["status"] == "FAILED"

    answer = await api.ok(
        "POST",
        "/v1/instances/retry",
        {
            "instanceIds": [failed[0]["id"], failed[1]["id"], "01NOPE"],
            "variables": {"approved": True},
        },
    )
    assert answer["matched"] == 3
    results = {r["instanceId"]: r for r in answer["results"]}
    assert results[failed[0]["id"]]["instance"]["status"] == "COMPLETED"
    assert results[failed[1]["id"]]["status"] == 409
    assert results[failed[1]["id"]]["reason"].startswith("instance is COMPLETED")
    assert (results["01NOPE"]["status"], results["01NOPE"]["error"]) == (404, "not-found")

    status, body = await api.call("POST", "/v1/instances/retry", {"filter": {"status": "ACTIVE"}})
    assert (status, body["reason"]) == (400, "filter.status must be FAILED when given")
    status, body = await api.call(
        "POST", "/v1/instances/retry", {"filter": {"startedAfter": "soon"}}
    )
    assert (status, body["reason"]) == (400, "filter.startedAfter must be an RFC 3339 timestamp")
    status, body = await api.call("POST", "/v1/instances/retry", {"variables": {}})
    assert (status, body["reason"]) == (400, "exactly one of instanceIds and filter is required")


async def test_instance_filters_counts_and_versions(api: Api) -> None:
    await api.upload(wf("OPS::list", task("a", "ops-a", "end"), END))
    v1 = [await api.start("OPS::list", business_key="k1") for _ in range(2)]
    await api.upload(wf("OPS::list", task("a", "ops-a2", "end"), END, description="v2"))
    v2 = await api.start("OPS::list", business_key="k2")
    assert v2["definitionVersion"] == 2
    cancelled = await api.ok("POST", f"/v1/instances/{v1[0]['id']}/cancel", {"reason": "x"})
    assert cancelled["status"] == "CANCELLED"

    page = await api.ok("GET", "/v1/instances?definitionId=OPS::list&definitionVersion=1")
    assert {i["id"] for i in page["items"]} == {i["id"] for i in v1}
    assert page["total"] == 2
    after = quote(v2["startedAt"])
    page = await api.ok("GET", f"/v1/instances?definitionId=OPS::list&startedAfter={after}")
    assert [i["id"] for i in page["items"]] == [v2["id"]]
    page = await api.ok("GET", f"/v1/instances?definitionId=OPS::list&startedBefore={after}")
    assert {i["id"] for i in page["items"]} == {i["id"] for i in v1}
    offset = dt.datetime.fromisoformat(v2["startedAt"]).astimezone(
        dt.timezone(dt.timedelta(hours=2))
    )
    page = await api.ok(
        "GET", f"/v1/instances?startedAfter={quote(offset.isoformat())}&status=ACTIVE"
    )
    assert [i["id"] for i in page["items"]] == [v2["id"]]

    counts = await api.ok("GET", "/v1/instances/counts?definitionId=OPS::list")
    assert counts == {
        "counts": {"ACTIVE": 2, "WAITING": 0, "COMPLETED": 0, "FAILED": 0, "CANCELLED": 1},
        "total": 3,
    }
    counts = await api.ok("GET", "/v1/instances/counts?businessKey=k2")
    assert counts["counts"]["ACTIVE"] == 1 and counts["total"] == 1

    versions = (await api.ok("GET", "/v1/definitions/OPS::list/versions"))["items"]
    assert [
        (v["version"], v["instances"]["ACTIVE"], v["instances"]["CANCELLED"]) for v in versions
    ] == [
        (1, 1, 1),
        (2, 1, 0),
    ]
    status, _ = await api.call("GET", "/v1/definitions/OPS::none/versions")
    assert status == 404
    for query, reason in [
        ("startedAfter=2026-13-01T00:00:00Z", "startedAfter must be an RFC 3339 timestamp"),
        (
            "startedBefore=2026-01-01T00:00:00",
            "startedBefore must be an RFC 3339 timestamp with an offset",
        ),
        ("definitionVersion=0", "definitionVersion must be a positive integer"),
        ("definitionVersion=two", "definitionVersion must be a positive integer"),
    ]:
        for path in ("/v1/instances", "/v1/instances/counts"):
            status, body = await api.call("GET", f"{path}?{query}")
            assert (status, body["reason"]) == (400, reason), (path, query)


async def test_chained_instances_are_linked_both_ways(api: Api) -> None:
    await api.upload(wf("OPS::second", task("b", "ops-b", "end"), END))
    await api.upload(
        wf(
            "OPS::first",
            task("a", "ops-first", "end"),
            END,
            autoStartNextWorkflow=True,
            nextWorkflowId="OPS::second",
        )
    )
    parent = await api.start("OPS::first")
    [job] = await api.poll(["ops-first"])
    assert await api.complete(job["id"]) == 204
    [child] = await api.wait_for_instances("OPS::second", 1)

    assert await api.ok("GET", f"/v1/instances/{parent['id']}/links") == {
        "parent": None,
        "children": [child["id"]],
    }
    assert await api.ok("GET", f"/v1/instances/{child['id']}/links") == {
        "parent": parent["id"],
        "children": [],
    }
    status, _ = await api.call("GET", "/v1/instances/01NOPE/links")
    assert status == 404
    status, _ = await api.call("GET", "/v1/instances/01NOPE/audit")
    assert status == 404


async def test_job_queues_count_open_jobs_and_recent_workers(api: Api, server: Server) -> None:
    await api.upload(wf("OPS::queue", task("a", "ops-queue", "end"), END))
    first = await api.start("OPS::queue")
    for _ in range(2):
        await api.start("OPS::queue")
    [claimed] = await api.poll(["ops-queue"], worker="w-q", max_jobs=1)
    assert claimed["instanceId"] == first["id"]  # the oldest first
    await api.poll(["ops-idle"], worker="w-idle")

    answer = await api.ok("GET", "/v1/jobs/queues")

    assert answer["workerWindowSeconds"] == 300
    queues = {q["jobType"]: q for q in answer["items"]}
    queue = queues["ops-queue"]
    assert (queue["unlocked"], queue["locked"], queue["exhausted"]) == (2, 1, 0)
    oldest = dt.datetime.fromisoformat(queue["oldestUnlockedAt"])
    assert oldest > dt.datetime.fromisoformat(claimed["createdAt"])
    assert 0 <= queue["oldestUnlockedAgeSeconds"] < 60
    assert [w["workerId"] for w in queue["workers"]] == ["w-q"]
    # a worker polling a type without jobs is seen too
    idle = queues["ops-idle"]
    assert (idle["unlocked"], idle["locked"], idle["oldestUnlockedAt"]) == (0, 0, None)
    assert [w["workerId"] for w in idle["workers"]] == ["w-idle"]
    assert list(queues) == sorted(queues)
    status, body = await api.call("GET", "/v1/jobs/queues?workerWindowSeconds=abc")
    assert status == 400 and "workerWindowSeconds" in body["reason"]
