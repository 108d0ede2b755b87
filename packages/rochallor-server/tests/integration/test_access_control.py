"""Access control end to end: every role against every operation, over REST and gRPC.

A real engine on PostgreSQL with access control enforced; each call gets fresh resources made
through the engine directly (an instance to cancel, a leased job to complete, …), so an allowed
call succeeds (2xx / OK) and a refused one is refused for its credential alone.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import asyncpg
import attrs
import pytest
import pytest_asyncio
from grpclib.client import Channel
from grpclib.const import Status
from grpclib.exceptions import GRPCError
from grpclib.health.v1.health_grpc import HealthStub
from grpclib.health.v1.health_pb2 import HealthCheckRequest

from rochallor_server import auth
from rochallor_server._gen.workflow import v1 as pb
from rochallor_server.api.grpc.service import WorkflowEngineService
from rochallor_server.api.rest import app as rest_app
from rochallor_server.app import Server
from rochallor_server.metrics import Metrics
from rochallor_server.store.postgres.api_keys import PostgresKeyStore

from ..grpc.conftest import definition_message
from ..support import settings_for

ADMIN, OPERATOR, WORKER, VIEWER = "admin", "operator", "worker", "viewer"
CALLERS: tuple[str | None, ...] = (ADMIN, OPERATOR, WORKER, VIEWER, None)
READERS = frozenset({ADMIN, OPERATOR, VIEWER})
OPERATORS = frozenset({ADMIN, OPERATOR})
WORKERS = frozenset({ADMIN, WORKER})
ADMINS = frozenset({ADMIN})
EVERYONE = frozenset(CALLERS)

JOB_DEF: dict[str, Any] = {
    "id": "AUTH::job",
    "name": "One job",
    "steps": [
        {"id": "work", "name": "Work", "type": "SERVICE_TASK", "jobType": "auth-job",
         "nextStep": "end"},
        {"id": "end", "name": "End", "type": "END"},
    ],
}  # fmt: skip
OTHER_JOB_DEF: dict[str, Any] = {
    "id": "AUTH::other-job",
    "name": "Another job type",
    "steps": [
        {"id": "work", "name": "Work", "type": "SERVICE_TASK", "jobType": "other-job",
         "nextStep": "end"},
        {"id": "end", "name": "End", "type": "END"},
    ],
}  # fmt: skip
TASK_DEF: dict[str, Any] = {
    "id": "AUTH::task",
    "name": "One user task",
    "steps": [
        {"id": "ask", "name": "Ask", "type": "USER_TASK", "nextStep": "end"},
        {"id": "end", "name": "End", "type": "END"},
    ],
}
WAIT_DEF: dict[str, Any] = {
    "id": "AUTH::wait",
    "name": "One wait",
    "steps": [
        {"id": "hold", "name": "Hold", "type": "WAIT", "nextStep": "end"},
        {"id": "end", "name": "End", "type": "END"},
    ],
}
FAIL_DEF: dict[str, Any] = {
    "id": "AUTH::fail",
    "name": "Fails at once (a decision without a match)",
    "steps": [
        {"id": "route", "name": "Route", "type": "DECISION",
         "conditionalNextSteps": {"never == true": "end"}},
        {"id": "end", "name": "End", "type": "END"},
    ],
}  # fmt: skip
CONSOLE = "http://console.local"


class World:
    """Makes the resources a call needs, through the engine (no credential involved)."""

    def __init__(self, server: Server) -> None:
        assert server.service is not None and server.access is not None
        self.server = server
        self.service = server.service
        self.access = server.access

    async def instance(self, definition_id: str) -> str:
        started = await self.service.start_instance(
            definition_id=definition_id, version=None, variables=None, business_key=None
        )
        return started.id

    async def leased_job(self, job_type: str = "auth-job") -> str:
        await self.instance(OTHER_JOB_DEF["id"] if job_type == "other-job" else JOB_DEF["id"])
        ids = await self.service.poll_jobs(
            worker_id="w", job_types=[job_type], max_jobs=1, wait_seconds=0, encode=lambda j: j.id
        )
        return ids[0]

    async def throwaway_key(self) -> str:
        key, _ = await self.access.create_key(name="throwaway", role="viewer")
        return key.id


@pytest_asyncio.fixture
async def secured(pg_dsn: str) -> AsyncIterator[Server]:
    """An engine with access control enforced from the start."""
    server = Server(settings_for(pg_dsn, WE_AUTH_REQUIRED="true", WE_CORS_ORIGINS=CONSOLE))
    await server.start()
    try:
        assert server.service is not None and server.access is not None
        assert server.access.enforce
        for document in (JOB_DEF, OTHER_JOB_DEF, TASK_DEF, WAIT_DEF, FAIL_DEF):
            await server.service.upload_definition(document)
        yield server
    finally:
        await server.stop()


@pytest_asyncio.fixture
async def tokens(secured: Server) -> dict[str, str]:
    assert secured.access is not None
    found: dict[str, str] = {}
    for role in (ADMIN, OPERATOR, WORKER, VIEWER):
        _, found[role] = await secured.access.create_key(name=f"{role} key", role=role)
    return found


# -- REST ----------------------------------------------------------------------------------------

RestCall = tuple[str, str, Any]


@attrs.frozen
class RestCase:
    operation: str
    allowed: frozenset[str | None]
    status: int
    call: Callable[[World], Awaitable[RestCall]]


def _fixed(method: str, path: str, body: Any = None) -> Callable[[World], Awaitable[RestCall]]:
    async def call(_world: World) -> RestCall:
        return method, path, body

    return call


async def _cancel(w: World) -> RestCall:
    return "POST", f"/v1/instances/{await w.instance('AUTH::wait')}/cancel", {}


async def _user_task(w: World) -> RestCall:
    iid = await w.instance("AUTH::task")
    return "POST", f"/v1/instances/{iid}/user-tasks/ask/complete", {}


async def _signal(w: World) -> RestCall:
    return "POST", f"/v1/instances/{await w.instance('AUTH::wait')}/signals/hold", {}


async def _complete(w: World) -> RestCall:
    return "POST", f"/v1/jobs/{await w.leased_job()}/complete", {"workerId": "w"}


async def _batch(w: World) -> RestCall:
    completions = [{"jobId": await w.leased_job()}]
    return "POST", "/v1/jobs/batch-complete", {"workerId": "w", "completions": completions}


async def _fail(w: World) -> RestCall:
    body = {"workerId": "w", "errorMessage": "boom"}
    return "POST", f"/v1/jobs/{await w.leased_job()}/fail", body


async def _extend(w: World) -> RestCall:
    return "POST", f"/v1/jobs/{await w.leased_job()}/extend", {"workerId": "w"}


async def _get_instance(w: World) -> RestCall:
    return "GET", f"/v1/instances/{await w.instance('AUTH::wait')}", None


async def _history(w: World) -> RestCall:
    return "GET", f"/v1/instances/{await w.instance('AUTH::wait')}/history", None


async def _retry(w: World) -> RestCall:
    return "POST", f"/v1/instances/{await w.instance('AUTH::fail')}/retry", {}


async def _retry_many(w: World) -> RestCall:
    return "POST", "/v1/instances/retry", {"instanceIds": [await w.instance("AUTH::fail")]}


async def _audit(w: World) -> RestCall:
    return "GET", f"/v1/instances/{await w.instance('AUTH::wait')}/audit", None


async def _links(w: World) -> RestCall:
    return "GET", f"/v1/instances/{await w.instance('AUTH::wait')}/links", None


async def _revoke(w: World) -> RestCall:
    return "POST", f"/v1/admin/keys/{await w.throwaway_key()}/revoke", {}


REST_CASES = [
    RestCase("UploadDefinition", ADMINS, 201, _fixed("POST", "/v1/definitions", JOB_DEF)),
    RestCase("ListDefinitions", READERS, 200, _fixed("GET", "/v1/definitions")),
    RestCase(
        "ValidateDefinition", READERS, 200, _fixed("POST", "/v1/definitions/validate", JOB_DEF)
    ),
    RestCase("GetDefinition", READERS, 200, _fixed("GET", "/v1/definitions/AUTH::job")),
    RestCase("GetDefinition", READERS, 200, _fixed("GET", "/v1/definitions/AUTH::job/versions/1")),
    RestCase(
        "StartInstance",
        OPERATORS,
        201,
        _fixed("POST", "/v1/instances", {"definitionId": "AUTH::wait"}),
    ),
    RestCase(
        "StartInstances",
        OPERATORS,
        200,
        _fixed("POST", "/v1/instances/batch", {"instances": [{"definitionId": "AUTH::wait"}]}),
    ),
    RestCase("ListInstances", READERS, 200, _fixed("GET", "/v1/instances")),
    RestCase("GetInstance", READERS, 200, _get_instance),
    RestCase("GetInstanceHistory", READERS, 200, _history),
    RestCase("CancelInstance", OPERATORS, 200, _cancel),
    RestCase("CompleteUserTask", OPERATORS, 204, _user_task),
    RestCase("SignalWait", OPERATORS, 204, _signal),
    RestCase(
        "PollJobs",
        WORKERS,
        200,
        _fixed("POST", "/v1/jobs/poll", {"workerId": "w", "jobTypes": ["auth-job"]}),
    ),
    RestCase("CompleteJob", WORKERS, 204, _complete),
    RestCase("BatchCompleteJobs", WORKERS, 200, _batch),
    RestCase("FailJob", WORKERS, 204, _fail),
    RestCase("ExtendJobLease", WORKERS, 200, _extend),
    RestCase("DescribeApi", READERS, 200, _fixed("GET", "/v1/openapi.json")),
    RestCase("RetryInstance", OPERATORS, 200, _retry),
    RestCase("RetryInstances", OPERATORS, 200, _retry_many),
    RestCase("CountInstances", READERS, 200, _fixed("GET", "/v1/instances/counts")),
    RestCase("GetInstanceAudit", READERS, 200, _audit),
    RestCase("GetInstanceLinks", READERS, 200, _links),
    RestCase(
        "ListDefinitionVersions", READERS, 200, _fixed("GET", "/v1/definitions/AUTH::job/versions")
    ),
    RestCase("GetJobQueues", READERS, 200, _fixed("GET", "/v1/jobs/queues")),
    RestCase("ListExhaustedJobs", READERS, 200, _fixed("GET", "/v1/jobs/exhausted")),
    RestCase(
        "CreateApiKey",
        ADMINS,
        201,
        _fixed("POST", "/v1/admin/keys", {"name": "made", "role": "worker"}),
    ),
    RestCase("ListApiKeys", ADMINS, 200, _fixed("GET", "/v1/admin/keys")),
    RestCase("RevokeApiKey", ADMINS, 200, _revoke),
    RestCase("Health", EVERYONE, 200, _fixed("GET", "/healthz")),
]


def _bearer(token: str | None) -> dict[str, str]:
    return {} if token is None else {"Authorization": f"Bearer {token}"}


async def _rest(
    session: aiohttp.ClientSession,
    base: str,
    method: str,
    path: str,
    body: Any = None,
    token: str | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    sent = {"Content-Type": "application/json", **_bearer(token), **(headers or {})}
    async with session.request(method, base + path, json=body, headers=sent) as response:
        text = await response.text()
        return response.status, text


async def test_every_role_against_every_rest_operation(
    secured: Server, tokens: dict[str, str]
) -> None:
    world = World(secured)
    base = f"http://127.0.0.1:{secured.rest_port}"
    wrong: list[str] = []
    async with aiohttp.ClientSession() as session:
        for case in REST_CASES:
            for caller in CALLERS:
                method, path, body = await case.call(world)
                token = None if caller is None else tokens[caller]
                status, text = await _rest(session, base, method, path, body, token)
                refused = 401 if caller is None else 403
                expected = case.status if caller in case.allowed else refused
                if status != expected:
                    wrong.append(
                        f"{caller or 'no credential'} {method} {path} ({case.operation}):"
                        f" {status}, expected {expected}: {text[:200]}"
                    )
    assert wrong == []


async def test_rest_refusals_say_why(secured: Server, tokens: dict[str, str]) -> None:
    base = f"http://127.0.0.1:{secured.rest_port}"
    async with aiohttp.ClientSession() as session:
        async with session.get(base + "/v1/instances") as response:
            assert response.status == 401
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
            assert (await response.json())["error"] == "unauthenticated"
        headers = _bearer(tokens[VIEWER])
        async with session.post(base + "/v1/instances", json={}, headers=headers) as response:
            assert response.status == 403
            body = await response.json()
            assert body["error"] == "forbidden"
            assert "viewer" in body["reason"] and "StartInstance" in body["reason"]
        for bad in ("Bearer rk_0123456789ab_" + "x" * 43, "Basic abc", "Bearer not-a-key"):
            async with session.get(base + "/v1/instances", headers={"Authorization": bad}) as r:
                assert r.status == 401, bad


# -- gRPC ----------------------------------------------------------------------------------------

GrpcCall = tuple[str, Any]


@attrs.frozen
class GrpcCase:
    operation: str
    allowed: frozenset[str | None]
    call: Callable[[World], Awaitable[GrpcCall]]


def _rpc(method: str, message: Any) -> Callable[[World], Awaitable[GrpcCall]]:
    async def call(_world: World) -> GrpcCall:
        return method, message

    return call


async def _g_cancel(w: World) -> GrpcCall:
    return "cancel_instance", pb.CancelInstanceRequest(id=await w.instance("AUTH::wait"))


async def _g_retry(w: World) -> GrpcCall:
    return "retry_instance", pb.RetryInstanceRequest(id=await w.instance("AUTH::fail"))


async def _g_get(w: World) -> GrpcCall:
    return "get_instance", pb.GetInstanceRequest(id=await w.instance("AUTH::wait"))


async def _g_history(w: World) -> GrpcCall:
    iid = await w.instance("AUTH::wait")
    return "get_instance_history", pb.GetInstanceHistoryRequest(id=iid)


async def _g_user_task(w: World) -> GrpcCall:
    message = pb.CompleteUserTaskRequest(
        instance_id=await w.instance("AUTH::task"), user_task_step_id="ask"
    )
    return "complete_user_task", message


async def _g_signal(w: World) -> GrpcCall:
    message = pb.SignalWaitRequest(instance_id=await w.instance("AUTH::wait"), wait_step_id="hold")
    return "signal_wait", message


async def _g_complete(w: World) -> GrpcCall:
    return "complete_job", pb.CompleteJobRequest(job_id=await w.leased_job(), worker_id="w")


async def _g_fail(w: World) -> GrpcCall:
    message = pb.FailJobRequest(job_id=await w.leased_job(), worker_id="w", error_message="x")
    return "fail_job", message


async def _g_extend(w: World) -> GrpcCall:
    return "extend_job_lease", pb.ExtendJobLeaseRequest(job_id=await w.leased_job(), worker_id="w")


GRPC_CASES = [
    GrpcCase(
        "UploadDefinition",
        ADMINS,
        _rpc(
            "upload_definition",
            pb.UploadDefinitionRequest(definition=definition_message(JOB_DEF)),
        ),
    ),
    GrpcCase(
        "GetDefinition",
        READERS,
        _rpc("get_definition", pb.GetDefinitionRequest(id="AUTH::job")),
    ),
    GrpcCase("ListDefinitions", READERS, _rpc("list_definitions", pb.ListDefinitionsRequest())),
    GrpcCase(
        "StartInstance",
        OPERATORS,
        _rpc("start_instance", pb.StartInstanceRequest(definition_id="AUTH::wait")),
    ),
    GrpcCase("GetInstance", READERS, _g_get),
    GrpcCase("GetInstanceHistory", READERS, _g_history),
    GrpcCase("ListInstances", READERS, _rpc("list_instances", pb.ListInstancesRequest())),
    GrpcCase("CancelInstance", OPERATORS, _g_cancel),
    GrpcCase("RetryInstance", OPERATORS, _g_retry),
    GrpcCase("CompleteUserTask", OPERATORS, _g_user_task),
    GrpcCase("SignalWait", OPERATORS, _g_signal),
    GrpcCase(
        "PollJobs",
        WORKERS,
        _rpc("poll_jobs", pb.PollJobsRequest(worker_id="w", job_types=["auth-job"])),
    ),
    GrpcCase("CompleteJob", WORKERS, _g_complete),
    GrpcCase("FailJob", WORKERS, _g_fail),
    GrpcCase("ExtendJobLease", WORKERS, _g_extend),
]  # fmt: skip


def _metadata(token: str | None) -> dict[str, str] | None:
    return None if token is None else {"authorization": f"Bearer {token}"}


async def test_every_role_against_every_grpc_operation(
    secured: Server, tokens: dict[str, str]
) -> None:
    world = World(secured)
    channel = Channel("127.0.0.1", secured.grpc_port)
    stub = pb.WorkflowEngineStub(channel)
    wrong: list[str] = []
    try:
        for case in GRPC_CASES:
            for caller in CALLERS:
                method, message = await case.call(world)
                token = None if caller is None else tokens[caller]
                try:
                    await getattr(stub, method)(message, metadata=_metadata(token), timeout=10)
                    got = Status.OK
                except GRPCError as exc:
                    got = exc.status
                if caller in case.allowed:
                    expected = Status.OK
                else:
                    expected = (
                        Status.UNAUTHENTICATED if caller is None else Status.PERMISSION_DENIED
                    )
                if got is not expected:
                    wrong.append(
                        f"{caller or 'no credential'} {method}: {got}, expected {expected}"
                    )
        for caller in CALLERS:  # the health service is open to everyone
            reply = await HealthStub(channel).Check(
                HealthCheckRequest(), metadata=_metadata(None if caller is None else tokens[caller])
            )
            assert reply.status == reply.SERVING
    finally:
        channel.close()
    assert wrong == []


def test_the_cases_cover_every_route_and_rpc(secured: Server) -> None:
    """A route or RPC added later must join these tables (and ``auth.OPERATIONS``)."""
    assert secured.service is not None
    app = rest_app.make_app(Metrics(), secured.service)
    served = {
        auth.rest_operation(route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.method != "HEAD" and route.resource is not None
    }
    assert served == {case.operation for case in REST_CASES}
    rpcs = {
        path.rsplit("/", 1)[1]
        for path in WorkflowEngineService.__mapping__(
            WorkflowEngineService(secured.service, Metrics())
        )
    }
    assert rpcs == {case.operation for case in GRPC_CASES}
    assert (rpcs | served) - {"Health"} <= set(auth.OPERATIONS)


# -- revocation, limits, audit -------------------------------------------------------------------


async def test_a_revoked_key_is_refused_at_once(secured: Server, tokens: dict[str, str]) -> None:
    assert secured.access is not None
    base = f"http://127.0.0.1:{secured.rest_port}"
    key, token = await secured.access.create_key(name="short-lived", role="viewer")
    channel = Channel("127.0.0.1", secured.grpc_port)
    stub = pb.WorkflowEngineStub(channel)
    try:
        async with aiohttp.ClientSession() as session:
            # Used (and so cached) on both transports first.
            assert (await _rest(session, base, "GET", "/v1/instances", token=token))[0] == 200
            await stub.list_instances(pb.ListInstancesRequest(), metadata=_metadata(token))

            status, _ = await _rest(
                session, base, "POST", f"/v1/admin/keys/{key.id}/revoke", {}, tokens[ADMIN]
            )
            assert status == 200

            status, text = await _rest(session, base, "GET", "/v1/instances", token=token)
            assert status == 401 and "revoked" in text
            with pytest.raises(GRPCError) as refused:
                await stub.list_instances(pb.ListInstancesRequest(), metadata=_metadata(token))
            assert refused.value.status is Status.UNAUTHENTICATED
    finally:
        channel.close()


async def test_a_key_revoked_elsewhere_is_refused_as_soon_as_the_database_says_so(
    secured: Server, pg_dsn: str
) -> None:
    """Another replica (or the CLI) revokes in the database; this one hears of it by NOTIFY."""
    assert secured.access is not None
    base = f"http://127.0.0.1:{secured.rest_port}"
    key, token = await secured.access.create_key(name="elsewhere", role="viewer")
    await _wait_until(lambda: secured.access is not None and secured.access.cache_live)
    async with aiohttp.ClientSession() as session:
        # Used once, so cached here (the cache is live while the listener is connected).
        assert (await _rest(session, base, "GET", "/v1/instances", token=token))[0] == 200
        pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=1)
        try:
            other_replica = PostgresKeyStore(pool)
            revoked_at = time.monotonic()
            await other_replica.revoke_key(key.id, dt.datetime.now(dt.UTC))
        finally:
            await pool.close()
        while (await _rest(session, base, "GET", "/v1/instances", token=token))[0] != 401:
            assert time.monotonic() - revoked_at < 2.0, "revocation not seen within 2 s"
            await asyncio.sleep(0.005)


async def _wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)


async def test_a_worker_key_is_limited_to_its_job_types(secured: Server) -> None:
    assert secured.access is not None
    world = World(secured)
    _, token = await secured.access.create_key(
        name="limited", role="worker", job_types=["auth-job"]
    )
    base = f"http://127.0.0.1:{secured.rest_port}"
    async with aiohttp.ClientSession() as session:
        poll = {"workerId": "w", "jobTypes": ["auth-job", "other-job"]}
        status, text = await _rest(session, base, "POST", "/v1/jobs/poll", poll, token)
        assert status == 403 and "other-job" in text
        poll = {"workerId": "w", "jobTypes": ["auth-job"]}
        assert (await _rest(session, base, "POST", "/v1/jobs/poll", poll, token))[0] == 200

        other = await world.leased_job("other-job")
        for path in (f"/v1/jobs/{other}/complete", f"/v1/jobs/{other}/fail"):
            status, text = await _rest(session, base, "POST", path, {"workerId": "w"}, token)
            assert status == 403, path
        status, _ = await _rest(
            session, base, "POST", f"/v1/jobs/{other}/extend", {"workerId": "w"}, token
        )
        assert status == 403
        mine = await world.leased_job("auth-job")
        status, _ = await _rest(
            session, base, "POST", f"/v1/jobs/{mine}/complete", {"workerId": "w"}, token
        )
        assert status == 204

    channel = Channel("127.0.0.1", secured.grpc_port)
    try:
        stub = pb.WorkflowEngineStub(channel)
        with pytest.raises(GRPCError) as refused:
            await stub.poll_jobs(
                pb.PollJobsRequest(worker_id="w", job_types=["other-job"]),
                metadata=_metadata(token),
            )
        assert refused.value.status is Status.PERMISSION_DENIED
        other = await world.leased_job("other-job")
        with pytest.raises(GRPCError) as refused:
            await stub.complete_job(
                pb.CompleteJobRequest(job_id=other, worker_id="w"), metadata=_metadata(token)
            )
        assert refused.value.status is Status.PERMISSION_DENIED
    finally:
        channel.close()


async def test_audit_entries_name_the_credential(
    secured: Server, tokens: dict[str, str], pg_dsn: str
) -> None:
    assert secured.access is not None
    keys = {k.name: k.id for k in await secured.access.list_keys()}
    base = f"http://127.0.0.1:{secured.rest_port}"
    async with aiohttp.ClientSession() as session:
        renamed = {**JOB_DEF, "name": "Renamed so that a new version is stored"}
        assert (await _rest(session, base, "POST", "/v1/definitions", renamed, tokens[ADMIN]))[
            0
        ] == 201
        start = {"definitionId": "AUTH::job"}
        status, text = await _rest(session, base, "POST", "/v1/instances", start, tokens[OPERATOR])
        assert status == 201
        instance_id = json.loads(text)["id"]
        poll = {"workerId": "w", "jobTypes": ["auth-job"], "maxJobs": 10}
        _, text = await _rest(session, base, "POST", "/v1/jobs/poll", poll, tokens[WORKER])
        job = next(j for j in json.loads(text)["jobs"] if j["instanceId"] == instance_id)
        done = {"workerId": "w"}
        path = f"/v1/jobs/{job['id']}/complete"
        assert (await _rest(session, base, "POST", path, done, tokens[WORKER]))[0] == 204
    waiting = await World(secured).instance("AUTH::wait")  # the engine's own call: no principal
    channel = Channel("127.0.0.1", secured.grpc_port)
    try:
        await pb.WorkflowEngineStub(channel).cancel_instance(
            pb.CancelInstanceRequest(id=waiting), metadata=_metadata(tokens[OPERATOR])
        )
    finally:
        channel.close()

    conn = await asyncpg.connect(pg_dsn)
    try:
        rows = await conn.fetch("SELECT kind, instance_id, principal, detail FROM audit_log")
    finally:
        await conn.close()
    by_kind: dict[tuple[str, str | None], str | None] = {
        (r["kind"], r["instance_id"]): r["principal"] for r in rows
    }
    operator = f"key:{keys['operator key']}"
    worker = f"key:{keys['worker key']}"
    uploads = [r["principal"] for r in rows if r["kind"] == "definition-uploaded"]
    assert f"key:{keys['admin key']}" in uploads
    assert by_kind[("instance-started", instance_id)] == operator
    assert by_kind[("job-completed", instance_id)] == worker
    # What the completion caused is attributed to it too.
    assert by_kind[("instance-completed", instance_id)] == worker
    assert by_kind[("instance-started", waiting)] is None
    assert by_kind[("instance-cancelled", waiting)] == operator


# -- browsers ------------------------------------------------------------------------------------


async def test_browser_cross_origin_posts_cannot_succeed(
    secured: Server, tokens: dict[str, str]
) -> None:
    base = f"http://127.0.0.1:{secured.rest_port}"
    async with aiohttp.ClientSession() as session:
        preflight = {
            "Origin": "http://evil.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        }
        async with session.options(base + "/v1/instances", headers=preflight) as response:
            assert response.status == 403
            assert "Access-Control-Allow-Origin" not in response.headers
        async with session.options(
            base + "/v1/instances", headers={**preflight, "Origin": CONSOLE}
        ) as response:
            assert response.status == 200
            assert response.headers["Access-Control-Allow-Origin"] == CONSOLE

        # A "simple" request needs no preflight: text/plain or a form, without credentials.
        for content_type in ("text/plain", "application/x-www-form-urlencoded"):
            async with session.post(
                base + "/v1/definitions",
                data=b'{"id": "x"}',
                headers={"Content-Type": content_type, "Origin": "http://evil.example"},
            ) as response:
                assert response.status == 403
        # Even carrying a stolen token, a post from a foreign page is refused.
        status, _ = await _rest(
            session,
            base,
            "POST",
            "/v1/instances",
            {"definitionId": "AUTH::wait"},
            tokens[ADMIN],
            {"Origin": "http://evil.example"},
        )
        assert status == 403
        # Without an Origin (SDKs, curl) and from the configured origin, it works.
        for headers in ({}, {"Origin": CONSOLE}):
            status, _ = await _rest(
                session,
                base,
                "POST",
                "/v1/instances",
                {"definitionId": "AUTH::wait"},
                tokens[OPERATOR],
                headers,
            )
            assert status == 201


async def test_open_mode_still_refuses_what_a_browser_could_send(server: Server) -> None:
    """No credentials configured (loopback only): the content-type rule alone stops a page."""
    base = f"http://127.0.0.1:{server.rest_port}"
    async with aiohttp.ClientSession() as session:
        for headers in ({"Content-Type": "text/plain"}, {}):
            async with session.post(
                base + "/v1/instances", data=b'{"definitionId": "x"}', headers=headers
            ) as response:
                assert response.status == 415
                assert "application/json" in (await response.json())["reason"]
        # A body-less post has nothing to parse; from another origin its Origin refuses it.
        async with session.post(
            base + "/v1/instances/anything/cancel", headers={"Origin": "http://evil.example"}
        ) as response:
            assert response.status == 403
        async with session.post(base + "/v1/instances/anything/cancel") as response:
            assert response.status == 404
        async with session.options(
            base + "/v1/instances",
            headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"},
        ) as response:
            assert response.status == 403
