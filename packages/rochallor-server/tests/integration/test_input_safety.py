"""Every input the engine accepts can be processed (``docs/limits.md``), on the real PostgreSQL.

An input is either refused at the door with a 400 naming the field, or it is stored and can
always be read, listed, polled, completed and advanced: nothing accepted answers 500 later.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import logging
from typing import Any

import pytest

from rochallor_server.app import Server
from rochallor_server.engine.model import Job
from rochallor_server.logs import SafeFormatter

from .client import Api

pytestmark = pytest.mark.timeout(120)

NUL = "a\u0000b"


def one_step(definition_id: str = "safe", job_type: str = "work") -> dict[str, Any]:
    return {
        "id": definition_id,
        "name": "one step",
        "steps": [
            {
                "id": "work",
                "name": "Work",
                "type": "SERVICE_TASK",
                "jobType": job_type,
                "nextStep": "done",
            },
            {"id": "done", "name": "Done", "type": "END"},
        ],
    }


def parked() -> dict[str, Any]:
    """A user task and a wait step, for the entry points that resume them."""
    return {
        "id": "parked",
        "name": "parked",
        "steps": [
            {
                "id": "split",
                "name": "Split",
                "type": "PARALLEL_GATEWAY",
                "parallelNextSteps": ["review", "hold"],
                "joinStep": "join",
            },
            {"id": "review", "name": "Review", "type": "USER_TASK", "nextStep": "join"},
            {"id": "hold", "name": "Hold", "type": "WAIT", "nextStep": "join"},
            {"id": "join", "name": "Join", "type": "JOIN_GATEWAY", "nextStep": "done"},
            {"id": "done", "name": "Done", "type": "END"},
        ],
    }


async def refused(api: Api, method: str, path: str, body: Any = None, **kw: Any) -> str:
    status, payload = await api.call(method, path, body, **kw)
    assert status == 400, (method, path, status, payload)
    assert payload["error"] == "bad-request"
    reason: str = payload["reason"]
    return reason


# -- numbers -----------------------------------------------------------------------------------


async def test_numbers_a_double_can_carry_are_stored_read_polled_and_completed(api: Api) -> None:
    await api.upload(one_step())
    variables = {
        "huge": 1e300,
        "negative": -1e25,
        "tiny": 5e-324,
        "max": 2**63 - 1,
        "min": -(2**63),
        "nested": [{"x": 1.5e308}],
    }
    started = await api.start("safe", variables)

    read = await api.instance(started["id"])
    assert read["variables"] == variables
    page = await api.ok("GET", "/v1/instances?definitionId=safe")
    assert page["items"][0]["variables"] == variables
    [job] = await api.poll(["work"])
    assert job["variables"] == variables
    assert await api.complete(job["id"], {"result": -1.7976931348623157e308}) == 204
    done = await api.wait_terminal(started["id"])
    assert done["status"] == "COMPLETED"
    assert done["variables"]["result"] == -1.7976931348623157e308


@pytest.mark.parametrize(
    ("variables", "path"),
    [
        ({"n": 18446744073709551616}, "variables.n"),
        ({"n": 9223372036854775808}, "variables.n"),
        ({"n": -9223372036854775809}, "variables.n"),
        ({"deep": {"list": [1, 2, 10**30]}}, "variables.deep.list[2]"),
    ],
)
async def test_integers_past_64_bits_are_refused_with_their_path(
    api: Api, variables: dict[str, Any], path: str
) -> None:
    await api.upload(one_step())
    reason = await refused(
        api, "POST", "/v1/instances", {"definitionId": "safe", "variables": variables}
    )
    assert reason.startswith(f"{path} is an integer outside the signed 64-bit range")

    started = await api.start("safe")
    [job] = await api.poll(["work"])
    reason = await refused(
        api, "POST", f"/v1/jobs/{job['id']}/complete", {"workerId": "w1", "variables": variables}
    )
    assert reason.startswith(path)
    # the refused completion changed nothing: the job is still the worker's to complete
    assert await api.complete(job["id"], {"ok": True}) == 204
    assert (await api.wait_terminal(started["id"]))["status"] == "COMPLETED"


async def test_numbers_a_double_cannot_carry_are_refused(api: Api) -> None:
    await api.upload(one_step())
    for raw in (
        b'{"definitionId":"safe","variables":{"n":1e400}}',
        b'{"definitionId":"safe","variables":{"n":NaN}}',
        b'{"definitionId":"safe","variables":{"n":' + b"9" * 5000 + b"}}",
    ):
        reason = await refused(api, "POST", "/v1/instances", raw=raw)
        assert reason.startswith("invalid request body: ")
        assert len(reason) < 120


async def test_user_tasks_and_signals_apply_the_same_rules(api: Api) -> None:
    await api.upload(parked())
    started = await api.start("parked")
    base = f"/v1/instances/{started['id']}"
    reason = await refused(
        api, "POST", f"{base}/user-tasks/review/complete", {"variables": {"n": 2**64}}
    )
    assert reason.startswith("variables.n is an integer outside")
    reason = await refused(api, "POST", f"{base}/signals/hold", {"k": NUL})
    assert reason == "variables.k must not contain NUL characters (\\u0000)"
    # nothing was written: both still resume normally
    await api.ok("POST", f"{base}/user-tasks/review/complete", {"variables": {"n": 1e300}}, 204)
    await api.ok("POST", f"{base}/signals/hold", {"k": "fine"}, 204)
    done = await api.wait_terminal(started["id"])
    assert done["status"] == "COMPLETED"
    assert done["variables"] == {"n": 1e300, "k": "fine"}


async def test_a_transformation_result_that_cannot_be_stored_fails_the_instance(
    api: Api,
) -> None:
    definition = {
        "id": "grow",
        "name": "grow",
        "steps": [
            {
                "id": "double",
                "name": "Double",
                "type": "TRANSFORMATION",
                "transformations": {"n": "${n * n}"},
                "nextStep": "done",
            },
            {"id": "done", "name": "Done", "type": "END"},
        ],
    }
    await api.upload(definition)
    started = await api.start("grow", {"n": 1e200})

    failed = await api.wait_terminal(started["id"])

    assert failed["status"] == "FAILED"
    assert "overflow" in failed["failureReason"] or "finite" in failed["failureReason"]


# -- NUL and other text ----------------------------------------------------------------------


async def test_nul_is_refused_at_every_entry_point_naming_the_field(api: Api) -> None:
    await api.upload(one_step())
    await api.upload(parked())
    started = await api.start("safe")
    parked_id = (await api.start("parked"))["id"]
    [job] = await api.poll(["work"])
    definition = one_step("nul")
    with_nul_name = {**definition, "name": NUL}
    with_nul_step = {
        **definition,
        "steps": [{**definition["steps"][0], "name": NUL}, definition["steps"][1]],
    }
    with_nul_metadata = {**definition, "metadata": {"owner": NUL}}
    cases: list[tuple[str, str, Any, str]] = [
        ("POST", "/v1/definitions", with_nul_name, "definition.name"),
        ("POST", "/v1/definitions", with_nul_step, "definition.steps[0].name"),
        ("POST", "/v1/definitions", with_nul_metadata, "definition.metadata.owner"),
        ("POST", "/v1/instances", {"definitionId": "safe", "businessKey": NUL}, "businessKey"),
        ("POST", "/v1/instances", {"definitionId": NUL}, "definitionId"),
        ("POST", "/v1/instances", {"definitionId": "safe", "variables": {NUL: 1}}, "variables"),
        (
            "POST",
            "/v1/instances",
            {"definitionId": "safe", "variables": {"v": [NUL]}},
            "variables.v[0]",
        ),
        ("GET", "/v1/instances?businessKey=a%00b", None, "businessKey"),
        ("GET", "/v1/instances?definitionId=a%00b", None, "definitionId"),
        ("GET", "/v1/instances?status=a%00b", None, "status"),
        ("GET", "/v1/definitions?keyword=a%00b", None, "keyword"),
        ("GET", "/v1/definitions/a%00b", None, "id"),
        ("GET", "/v1/definitions/a%00b/versions/1", None, "id"),
        ("GET", "/v1/instances/a%00b", None, "id"),
        ("GET", "/v1/instances/a%00b/history", None, "id"),
        ("POST", "/v1/instances/a%00b/cancel", None, "id"),
        ("POST", f"/v1/instances/{started['id']}/cancel", {"reason": NUL}, "reason"),
        ("POST", "/v1/jobs/poll", {"workerId": NUL, "jobTypes": ["work"]}, "workerId"),
        ("POST", "/v1/jobs/poll", {"workerId": "w", "jobTypes": ["work", NUL]}, "jobTypes[1]"),
        ("POST", f"/v1/jobs/{job['id']}/complete", {"workerId": NUL}, "workerId"),
        ("POST", "/v1/jobs/a%00b/complete", {}, "jobId"),
        (
            "POST",
            f"/v1/jobs/{job['id']}/fail",
            {"errorMessage": NUL, "retryable": True},
            "errorMessage",
        ),
        ("POST", "/v1/jobs/a%00b/fail", {}, "jobId"),
        ("POST", "/v1/jobs/a%00b/extend", {"workerId": "w1"}, "jobId"),
        ("POST", f"/v1/jobs/{job['id']}/extend", {"workerId": NUL}, "workerId"),
        ("POST", f"/v1/instances/{parked_id}/user-tasks/a%00b/complete", {}, "userTaskId"),
        (
            "POST",
            f"/v1/instances/{parked_id}/user-tasks/review/complete",
            {"workerId": NUL},
            "workerId",
        ),
        ("POST", f"/v1/instances/{parked_id}/signals/a%00b", None, "waitStepId"),
    ]
    for method, path, body, field in cases:
        status, payload = await api.call(method, path, body)
        assert status == 400, (method, path, status, payload)
        assert payload["reason"].startswith(field), (path, payload["reason"])
        assert "NUL" in payload["reason"], payload["reason"]

    # nothing above was stored or changed: the healthy work goes on
    assert await api.complete(job["id"], {"ok": True}) == 204
    assert (await api.wait_terminal(started["id"]))["status"] == "COMPLETED"


async def test_one_bad_item_of_a_batch_fails_alone(api: Api) -> None:
    await api.upload(one_step())
    ids = [(await api.start("safe"))["id"] for _ in range(3)]
    jobs = await api.poll(["work"])
    assert len(jobs) == 3
    body = {
        "workerId": "w1",
        "completions": [
            {"jobId": jobs[0]["id"], "variables": {"ok": 1}},
            {"jobId": jobs[1]["id"], "variables": {"bad": NUL}},
            {"jobId": jobs[2]["id"], "variables": {"ok": 3}},
        ],
    }

    answer = await api.ok("POST", "/v1/jobs/batch-complete", body)

    assert [r["status"] for r in answer["results"]] == [204, 400, 204]
    assert answer["results"][1]["reason"].startswith("variables.bad must not contain NUL")
    by_job = {j["id"]: j["instanceId"] for j in jobs}
    assert (await api.wait_terminal(by_job[jobs[0]["id"]]))["status"] == "COMPLETED"
    assert (await api.wait_terminal(by_job[jobs[2]["id"]]))["status"] == "COMPLETED"
    assert (await api.instance(by_job[jobs[1]["id"]]))["status"] != "FAILED"
    assert sorted(ids) == sorted(by_job.values())


async def test_long_identifiers_and_long_paths_get_a_json_error(api: Api) -> None:
    await api.upload(one_step())
    reason = await refused(
        api, "POST", "/v1/instances", {"definitionId": "safe", "businessKey": "k" * 257}
    )
    assert reason == "businessKey must be at most 256 characters"
    # a 10 000-character path reaches the application and is answered in JSON
    reason = await refused(api, "GET", "/v1/instances/" + "i" * 10_000)
    assert reason == "id must be at most 256 characters"
    # free text is cut, not refused: a long failure message is stored shortened
    started = await api.start("safe")
    [job] = await api.poll(["work"])
    assert await api.fail(job["id"], "x" * 100_000, retryable=False) == 204
    failed = await api.wait_terminal(started["id"])
    assert len(failed["failureReason"]) <= 8192 + 200


async def test_definition_version_past_the_column_range(api: Api) -> None:
    await api.upload(one_step())
    for version in (2**31, 2**63, 2**70):
        status, payload = await api.call(
            "POST", "/v1/instances", {"definitionId": "safe", "definitionVersion": version}
        )
        assert status == 404, payload
        assert payload["reason"] == f'definition "safe" version {version} not found'


async def test_variables_nest_at_most_64_levels(api: Api) -> None:
    await api.upload(one_step())
    deep: Any = 1
    for _ in range(64):
        deep = [deep]
    reason = await refused(
        api, "POST", "/v1/instances", {"definitionId": "safe", "variables": {"d": deep}}
    )
    assert reason.endswith("nests deeper than 64 levels")
    assert await api.start("safe", {"d": deep[0]})


async def test_request_bodies_past_the_limit_are_413(api: Api) -> None:
    body = b'{"definitionId":"safe","variables":{"v":"' + b"x" * 9_000_000 + b'"}}'
    status, payload = await api.call("POST", "/v1/instances", raw=io.BytesIO(body))  # type: ignore[arg-type]
    assert status == 413
    assert payload["reason"] == "request body exceeds 8388608 bytes"


# -- a poll never loses the jobs it claimed ------------------------------------------------


async def test_a_job_that_cannot_be_handed_out_is_released_and_the_others_are_not(
    server: Server, api: Api
) -> None:
    await api.upload(one_step())
    ids = [(await api.start("safe"))["id"] for _ in range(4)]
    poisoned = ids[1]

    def encode(job: Job) -> str:
        if job.instance_id == poisoned:
            raise ValueError("cannot encode")
        return job.id

    handed = await server.service.poll_jobs(
        worker_id="w1", job_types=["work"], max_jobs=10, wait_seconds=0, encode=encode
    )

    assert len(handed) == 3
    [again] = await api.poll(["work"], worker="w2")  # claimable at once, not after its lease
    assert again["instanceId"] == poisoned
    assert again["workerId"] == "w2"


async def test_a_poisoned_instance_among_many_does_not_hold_up_the_healthy_ones(
    api: Api,
) -> None:
    await api.upload(one_step())
    healthy = [(await api.start("safe", {"n": i}))["id"] for i in range(150)]
    # what used to poison a poll: refused at the door, or stored and served like any other
    await refused(
        api,
        "POST",
        "/v1/instances",
        {"definitionId": "safe", "variables": {"n": 18446744073709551616}},
    )
    healthy.insert(75, (await api.start("safe", {"n": 1e300, "m": -1e25}))["id"])

    polls = 0
    while jobs := await api.poll(["work"], max_jobs=10):
        polls += 1
        assert len(jobs) == 10 or polls == 16  # every claim is a full one until the end
        results = await asyncio.gather(*(api.complete(j["id"], {"done": True}) for j in jobs))
        assert set(results) == {204}

    assert polls == 16
    for instance_id in healthy:
        assert (await api.wait_terminal(instance_id))["status"] == "COMPLETED"


# -- logs --------------------------------------------------------------------------------------


def test_log_lines_cannot_be_forged_with_control_characters() -> None:
    record = logging.LogRecord(
        "rochallor", logging.ERROR, __file__, 1, "%s %s: failed", ("GET", "/v1/x\nFORGED 1"), None
    )
    line = SafeFormatter("%(levelname)s %(message)s").format(record)

    assert line == "ERROR GET /v1/x\\nFORGED 1: failed"
    assert "\n" not in line


# -- versions stored before the validator's limits -------------------------------------------


async def test_a_version_stored_before_the_limits_still_runs(server: Server, api: Api) -> None:
    """The validator now refuses these on upload; a version stored earlier must still load,
    and its instances advance: the huge timer never fires, the retry budget is capped."""
    document = {
        "id": "old",
        "name": "stored before the limits",
        "steps": [
            {
                "id": "work",
                "name": "Work",
                "type": "SERVICE_TASK",
                "jobType": "old-work",
                "retryCount": 10**12,
                "nextStep": "done",
                "boundaryEvents": [
                    {
                        "type": "TIMER",
                        "duration": "P99999999999999Y",
                        "interrupting": True,
                        "targetStepId": "done",
                    }
                ],
            },
            {"id": "done", "name": "Done", "type": "END"},
        ],
    }
    status, payload = await api.call("POST", "/v1/definitions", document)
    assert status == 400, payload  # refused today
    async with server.store.transaction() as tx:
        await tx.insert_definition(
            document=document, definition_id="old", name="old", uploaded_at=dt.datetime.now(dt.UTC)
        )

    started = await api.start("old")
    [job] = await api.poll(["old-work"])
    assert job["retriesRemaining"] == 1_000_000
    assert await api.fail(job["id"], "once more", retryable=True) == 204
    [again] = await api.poll(["old-work"])
    assert await api.complete(again["id"]) == 204
    assert (await api.wait_terminal(started["id"]))["status"] == "COMPLETED"
