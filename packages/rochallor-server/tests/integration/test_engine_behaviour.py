"""Concurrency, leases, long-poll, bad input and invariants against a real PostgreSQL."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import asyncpg

from rochallor_server.app import Server
from rochallor_server.config import load_settings

from .client import TERMINAL, Api
from .test_scenarios import END, task, wf

ONE_TASK = wf("t-one", task("a", "one-a", "end"), END)


async def test_concurrent_pollers_never_receive_the_same_job(api: Api) -> None:
    await api.upload(ONE_TASK)
    for _ in range(60):
        await api.start("t-one")

    async def poller(n: int) -> list[str]:
        got: list[str] = []
        while True:
            jobs = await api.poll(["one-a"], worker=f"w{n}", max_jobs=3)
            if not jobs:
                return got
            got.extend(j["id"] for j in jobs)
            assert all(j["workerId"] == f"w{n}" for j in jobs)

    results = await asyncio.gather(*(poller(n) for n in range(8)))
    claimed = [job for result in results for job in result]
    assert len(claimed) == 60
    assert len(set(claimed)) == 60


async def test_concurrent_completions_advance_once(api: Api, server: Server) -> None:
    await api.upload(wf("t-two", task("a", "two-a", "b"), task("b", "two-b", "end"), END))
    inst = await api.start("t-two")
    [job] = await api.poll(["two-a"])
    statuses = await asyncio.gather(
        *(api.complete(job["id"], {"winner": n}, worker=f"w{n}") for n in range(8))
    )
    assert statuses == [204] * 8
    after = await api.instance(inst["id"])
    assert after["currentStepIds"] == ["b"]
    history = await api.history(inst["id"])
    assert [h["stepId"] for h in history] == ["a", "b"]
    # exactly one job for b: the instance advanced once
    assert len(await api.poll(["two-b"], max_jobs=10)) == 1


async def test_batch_completion_answers_each_job_as_the_single_request_would(api: Api) -> None:
    await api.upload(ONE_TASK)
    instances = [await api.start("t-one", {"n": n}) for n in range(5)]
    jobs = await api.poll(["one-a"], max_jobs=10)
    assert len(jobs) == 5
    completions = [{"jobId": j["id"], "variables": {"done": j["id"]}} for j in jobs]
    completions.insert(2, {"jobId": "no-such-job"})
    completions.append({"jobId": jobs[0]["id"], "variables": {"done": "again"}})  # a replay
    result = await api.ok(
        "POST", "/v1/jobs/batch-complete", {"workerId": "w1", "completions": completions}
    )
    assert [r["jobId"] for r in result["results"]] == [c["jobId"] for c in completions]
    assert [r["status"] for r in result["results"]] == [204, 204, 404, 204, 204, 204, 204]
    missing = result["results"][2]
    assert (missing["error"], missing["reason"]) == ("not-found", 'job "no-such-job" not found')
    for inst in instances:
        done = await api.wait_until(inst["id"], lambda i: i["status"] in TERMINAL)
        assert done["status"] == "COMPLETED"
        own = [j["id"] for j in jobs if j["instanceId"] == inst["id"]]
        assert done["variables"]["done"] in own  # the first completion of each job counts

    status, body = await api.call("POST", "/v1/jobs/batch-complete", {"completions": []})
    assert (status, body["reason"]) == (400, "completions must not be empty")
    status, body = await api.call(
        "POST", "/v1/jobs/batch-complete", {"completions": [{"variables": {}}]}
    )
    assert (status, body["reason"]) == (400, "completions[0]: jobId is required")
    too_many = [{"jobId": f"j{n}"} for n in range(101)]
    status, body = await api.call("POST", "/v1/jobs/batch-complete", {"completions": too_many})
    assert (status, body["reason"]) == (400, "at most 100 completions per request")


async def test_bad_input_gets_4xx_and_leaves_state_unchanged(api: Api) -> None:
    await api.upload(
        wf(
            "t-bad",
            {"id": "w", "name": "W", "type": "WAIT", "nextStep": "a"},
            task("a", "bad-a", "end"),
            END,
        )
    )
    inst = await api.start("t-bad", {"k": 1})
    iid = inst["id"]
    before = await api.instance(iid)
    before_history = await api.history(iid)
    bad_calls: list[tuple[str, str, bytes | None, int]] = [
        ("POST", "/v1/instances", b"{not json", 400),
        ("POST", "/v1/instances", b'{"definitionId": 5}', 400),
        ("POST", "/v1/instances", b'{"definitionId": "t-bad", "variables": [1]}', 400),
        ("POST", "/v1/instances", b'{"definitionId": "missing"}', 404),
        ("POST", f"/v1/instances/{iid}/signals/w", b"[1, 2]", 400),
        ("POST", f"/v1/instances/{iid}/signals/a", b"{}", 400),
        ("POST", f"/v1/instances/{iid}/user-tasks/w/complete", b"{}", 400),
        ("POST", f"/v1/instances/{iid}/signals/w", b"{broken", 400),
        ("POST", "/v1/jobs/poll", b"", 400),
        ("POST", "/v1/jobs/poll", b'{"workerId": "", "jobTypes": ["x"]}', 400),
        ("POST", "/v1/jobs/nope/complete", b"{}", 404),
        ("POST", "/v1/jobs/nope/fail", b"{}", 404),
        ("POST", "/v1/definitions", b'{"id": "bad id!", "name": "x", "steps": []}', 400),
        ("GET", "/v1/definitions/t-bad/versions/abc", None, 400),
        ("GET", "/v1/instances/unknown", None, 404),
    ]
    for method, path, body, expected in bad_calls:
        status, payload = await api.call(method, path, raw=body)
        assert status == expected, (method, path, status, payload)
        assert isinstance(payload, dict)
        assert payload["error"]
        assert payload["reason"]
    assert await api.instance(iid) == before
    assert await api.history(iid) == before_history


async def test_long_poll_is_woken_when_a_job_is_created(api: Api) -> None:
    await api.upload(wf("t-lp", task("a", "lp-a", "end"), END))
    waiter = asyncio.create_task(api.poll(["lp-a"], wait_ms=10_000))
    await asyncio.sleep(0.3)
    assert not waiter.done()
    started = time.monotonic()
    await api.start("t-lp")
    jobs = await asyncio.wait_for(waiter, timeout=5)
    elapsed = time.monotonic() - started
    assert len(jobs) == 1
    assert elapsed < 5  # woken long before the 10 s wait ran out


async def test_long_poll_returns_empty_after_its_wait(api: Api) -> None:
    started = time.monotonic()
    assert await api.poll(["nothing-here"], wait_ms=300) == []
    assert time.monotonic() - started >= 0.29


async def _server(dsn: str, **env: str) -> Server:
    settings = load_settings(
        {
            "WE_POSTGRES_DSN": dsn,
            "WE_BIND_HOST": "127.0.0.1",
            "WE_REST_PORT": "0",
            "WE_GRPC_PORT": "0",
            "WE_METRICS_PORT": "0",
            "DB_MIN_CONNS": "1",
            "DB_MAX_CONNS": "8",
            **env,
        }
    )
    srv = Server(settings)
    await srv.start()
    return srv


async def test_expired_leases_are_reclaimed_once_by_two_replicas(pg_dsn: str) -> None:
    env = {"WE_JOB_LEASE": "500ms", "WE_LEASE_SWEEP_INTERVAL": "100ms"}
    a = await _server(pg_dsn, **env)
    b = await _server(pg_dsn, **env)
    try:
        async with Api.connect(f"http://127.0.0.1:{a.rest_port}") as api:
            await api.upload(wf("t-lease", task("a", "lease-a", "end", retryCount=1), END))
            inst = await api.start("t-lease")
            [first] = await api.poll(["lease-a"], worker="crashed")
            deadline = time.monotonic() + 10
            again: list[dict[str, Any]] = []
            while not again:
                assert time.monotonic() < deadline, "job was never reclaimed"
                await asyncio.sleep(0.1)
                again = await api.poll(["lease-a"], worker="healthy")
            assert again[0]["id"] == first["id"]
            assert again[0]["retriesRemaining"] == 1  # a lease expiry is not a retry
            timeouts = sum(s.metrics.job_timeouts._value.get() for s in (a, b))
            assert timeouts == 1
            assert await api.complete(again[0]["id"]) == 204
            assert (await api.instance(inst["id"]))["status"] == "COMPLETED"
    finally:
        await a.stop()
        await b.stop()


async def test_extend_lease_only_by_holder(api: Api) -> None:
    await api.upload(wf("t-ext", task("a", "ext-a", "end"), END))
    await api.start("t-ext")
    [job] = await api.poll(["ext-a"], worker="holder")
    status, body = await api.call("POST", f"/v1/jobs/{job['id']}/extend", {"workerId": "holder"})
    assert status == 200
    assert body["lockExpiresAt"] >= job["lockExpiresAt"]
    status, body = await api.call("POST", f"/v1/jobs/{job['id']}/extend", {"workerId": "thief"})
    assert status == 409
    status, _ = await api.call("POST", "/v1/jobs/unknown/extend", {"workerId": "holder"})
    assert status == 404


async def test_metrics_move(api: Api, server: Server) -> None:
    await api.upload(ONE_TASK)
    inst = await api.start("t-one")
    await api.work({"one-a": lambda j: None}, inst["id"])
    async with api.session.get(f"http://127.0.0.1:{server.metrics_port}/metrics") as response:
        text = await response.text()
    for line in (
        "workflow_definitions_uploaded_total 1.0",
        "workflow_instances_started_total 1.0",
        'workflow_instances_completed_total{outcome="completed"} 1.0',
        'workflow_steps_executed_total{step_type="SERVICE_TASK"} 1.0',
        "engine_job_pickup_latency_seconds_count 1.0",
    ):
        assert line in text, line
    assert 'http_requests_duration_seconds_count{method="POST",path="/v1/jobs/poll"' in text
    # one batch of job events (completions and failures are written together)
    assert 'engine_db_transaction_duration_seconds_count{tx_type="job_events"} 1.0' in text


# -- invariants under a chaos worker ------------------------------------------------------


def _random_workflow(rng: random.Random, n: int) -> dict[str, Any]:
    steps: list[dict[str, Any]] = []
    for i in range(n):
        nxt = f"s{i + 1}" if i + 1 < n else "end"
        steps.append(task(f"s{i}", "chaos", nxt, retryCount=rng.randint(0, 2)))
    steps.append(END)
    return wf(f"chaos-{n}", *steps)


async def test_invariants_hold_under_a_chaos_worker(api: Api, server: Server) -> None:
    rng = random.Random(20261124)
    ids = []
    for n in (1, 2, 3, 4):
        summary = await api.upload(_random_workflow(rng, n))
        again = await api.upload(_random_workflow(random.Random(20261124 + n), n))
        assert again["version"] >= summary["version"]
        started = [await api.start(summary["id"]) for _ in range(5)]
        ids.extend(s["id"] for s in started)
    deadline = time.monotonic() + 60
    while True:
        jobs = await api.poll(["chaos"], max_jobs=20, worker="chaos")
        for job in jobs:
            roll = rng.random()
            if roll < 0.7:
                # I6/I11: duplicate concurrent completions
                await asyncio.gather(api.complete(job["id"], {"r": roll}), api.complete(job["id"]))
            elif roll < 0.9:
                await api.fail(job["id"], "transient", retryable=True, worker="chaos")
            else:
                await api.fail(job["id"], "fatal", retryable=False, worker="chaos")
        states = [await api.instance(i) for i in ids]
        if all(s["status"] in TERMINAL for s in states):
            break
        assert time.monotonic() < deadline
    assert server.dsn is not None
    conn = await asyncpg.connect(server.dsn)
    try:
        for state in states:
            iid = state["id"]
            if state["status"] == "COMPLETED":
                assert state["currentStepIds"] == []  # I2, I8
            if state["status"] == "FAILED":
                assert state["failureReason"]  # I7
            history = await api.history(iid)
            steps = {f"s{i}" for i in range(5)} | {"end"}
            assert all(h["stepId"] in steps for h in history)  # I3
            assert all(h["status"] in {"COMPLETED", "FAILED", "SKIPPED"} for h in history)  # I4, I9
            open_jobs = await conn.fetchval(
                "SELECT count(*) FROM job"
                " WHERE instance_id = $1 AND status IN ('UNLOCKED', 'LOCKED')",
                iid,
            )
            assert open_jobs == 0  # I9
            per_step = [h["stepId"] for h in history]
            assert len(per_step) == len(set(per_step))  # I11: each step entered once
        # I1: terminal states are final
        for state in states:
            assert (await api.instance(state["id"]))["status"] == state["status"]
    finally:
        await conn.close()


async def test_abandoned_long_poll_claims_nothing(api: Api) -> None:
    await api.upload(wf("t-gone", task("a", "gone-a", "end"), END))
    abandoned = asyncio.create_task(api.poll(["gone-a"], worker="gone", wait_ms=5_000))
    await asyncio.sleep(0.3)
    abandoned.cancel()  # the worker hangs up mid-wait
    await asyncio.sleep(0.3)
    await api.start("t-gone")
    [job] = await api.poll(["gone-a"], worker="present")
    assert job["workerId"] == "present"


async def test_racing_cancel_and_completions_never_fail_the_call(api: Api) -> None:
    """Completion locks job then instance; cancel locks instance then jobs. Deadlock victims
    are retried, so every call answers as specified and the end state is consistent."""
    await api.upload(
        wf(
            "t-race",
            {
                "id": "fork",
                "name": "Fork",
                "type": "PARALLEL_GATEWAY",
                "parallelNextSteps": ["a", "b", "c"],
                "joinStep": "join",
            },
            task("a", "race", "join"),
            task("b", "race", "join"),
            task("c", "race", "join"),
            {"id": "join", "name": "Join", "type": "JOIN_GATEWAY", "nextStep": "end"},
            END,
        )
    )
    for _ in range(8):
        inst = await api.start("t-race")
        jobs = await api.poll(["race"], max_jobs=3)
        assert len(jobs) == 3
        results = await asyncio.gather(
            *(api.complete(j["id"]) for j in jobs),
            api.call("POST", f"/v1/instances/{inst['id']}/cancel", {"reason": "race"}),
        )
        completions, (cancel_status, _) = results[:3], results[3]
        assert completions == [204, 204, 204]
        final = await api.instance(inst["id"])
        if cancel_status == 200:
            assert final["status"] == "CANCELLED"
        else:
            assert cancel_status == 409
            assert final["status"] == "COMPLETED"


async def test_concurrent_branch_arrivals_fire_the_join_once(api: Api) -> None:
    await api.upload(
        wf(
            "t-join",
            {
                "id": "fork",
                "name": "Fork",
                "type": "PARALLEL_GATEWAY",
                "parallelNextSteps": ["a", "b", "c"],
                "joinStep": "join",
            },
            task("a", "join-branch", "join"),
            task("b", "join-branch", "join"),
            task("c", "join-branch", "join"),
            {"id": "join", "name": "Join", "type": "JOIN_GATEWAY", "nextStep": "after"},
            task("after", "join-after", "end"),
            END,
        )
    )
    for _ in range(5):
        inst = await api.start("t-join")
        jobs = await api.poll(["join-branch"], max_jobs=3)
        assert len(jobs) == 3
        statuses = await asyncio.gather(*(api.complete(j["id"], {j["stepId"]: 1}) for j in jobs))
        assert statuses == [204, 204, 204]
        state = await api.instance(inst["id"])
        assert state["currentStepIds"] == ["after"]
        assert state["variables"] == {"a": 1, "b": 1, "c": 1}
        history = await api.history(inst["id"])
        assert [h["stepId"] for h in history].count("join") == 1
        assert len(await api.poll(["join-after"], max_jobs=10)) == 1


def fan_in(definition_id: str, job_type: str, branches: list[str]) -> dict[str, Any]:
    """A parallel gateway into one SERVICE_TASK per branch, joined, then the end."""
    return wf(
        definition_id,
        {
            "id": "fork",
            "name": "Fork",
            "type": "PARALLEL_GATEWAY",
            "parallelNextSteps": branches,
            "joinStep": "join",
        },
        *(task(branch, job_type, "join") for branch in branches),
        {"id": "join", "name": "Join", "type": "JOIN_GATEWAY", "nextStep": "end"},
        END,
    )


async def test_a_wide_fan_in_completed_at_once_joins_once(api: Api) -> None:
    """Forty branches of one instance complete together, in one batch request and as forty
    single requests: every completion succeeds, each is applied once, the join fires once."""
    branches = [f"b{n}" for n in range(40)]
    await api.upload(fan_in("t-wide", "wide-branch", branches))
    for batched in (True, False):
        inst = await api.start("t-wide")
        jobs = await api.poll(["wide-branch"], max_jobs=100)
        assert len(jobs) == 40
        if batched:
            completions = [{"jobId": j["id"], "variables": {j["stepId"]: 1}} for j in jobs]
            result = await api.ok("POST", "/v1/jobs/batch-complete", {"completions": completions})
            statuses = [r["status"] for r in result["results"]]
        else:
            statuses = list(
                await asyncio.gather(*(api.complete(j["id"], {j["stepId"]: 1}) for j in jobs))
            )
        assert statuses == [204] * 40
        state = await api.wait_until(inst["id"], lambda i: i["status"] in TERMINAL)
        assert state["status"] == "COMPLETED"
        assert state["variables"] == {b: 1 for b in branches}
        history = await api.history(inst["id"])
        assert [h["stepId"] for h in history].count("join") == 1


async def test_two_replicas_completing_branches_of_one_instance_join_once(pg_dsn: str) -> None:
    """Across processes only the instance's revision serialises events: each replica's
    stale writes apply nothing and are decided again."""
    branches = [f"b{n}" for n in range(24)]
    a = await _server(pg_dsn)
    b = await _server(pg_dsn)
    try:
        async with (
            Api.connect(f"http://127.0.0.1:{a.rest_port}") as api_a,
            Api.connect(f"http://127.0.0.1:{b.rest_port}") as api_b,
        ):
            await api_a.upload(fan_in("t-replicas", "replica-branch", branches))
            for _ in range(3):
                inst = await api_a.start("t-replicas")
                jobs = await api_b.poll(["replica-branch"], max_jobs=100)
                assert len(jobs) == len(branches)
                statuses = await asyncio.gather(
                    *(
                        (api_a if n % 2 else api_b).complete(job["id"], {job["stepId"]: n})
                        for n, job in enumerate(jobs)
                    )
                )
                assert statuses == [204] * len(branches)
                state = await api_b.wait_until(inst["id"], lambda i: i["status"] in TERMINAL)
                assert state["status"] == "COMPLETED"
                assert set(state["variables"]) == set(branches)
                history = await api_a.history(inst["id"])
                assert [h["stepId"] for h in history].count("join") == 1
                assert [h["stepId"] for h in history].count("fork") == 1
        conflicts = sum(s.metrics.instance_conflicts._value.get() for s in (a, b))
        assert conflicts > 0  # the replicas did race, and the revision check resolved it
    finally:
        await a.stop()
        await b.stop()
