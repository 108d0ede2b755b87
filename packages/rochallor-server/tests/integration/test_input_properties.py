"""Properties over the public entry points, on a real engine process and PostgreSQL.

Whatever JSON a client sends as variables (huge and tiny numbers, unicode, NUL, deep nesting),
over REST or gRPC, the engine answers 2xx or 4xx, and after every 2xx the instance can be read,
listed, polled and completed: nothing accepted can wedge it (``docs/limits.md``).
"""

from __future__ import annotations

import asyncio
import json
import math
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from grpclib.client import Channel
from grpclib.exceptions import GRPCError
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from rochallor_server._gen.workflow import v1 as pb
from rochallor_server.api.grpc import convert
from rochallor_server.store.postgres import migrate
from rochallor_server.testing import EngineProcess, TestCluster

pytestmark = pytest.mark.timeout(300)

DEFINITION = {
    "id": "prop",
    "name": "property",
    "steps": [
        {
            "id": "work",
            "name": "Work",
            "type": "SERVICE_TASK",
            "jobType": "prop-work",
            "nextStep": "done",
        },
        {"id": "done", "name": "Done", "type": "END"},
    ],
}

texts = st.text(st.characters(codec="utf-8") | st.sampled_from(["\x00", "\u2603", "\U0001f600"]))
numbers = (
    st.integers()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([1e300, -1e25, 5e-324, 2**63, -(2**63) - 1, 2**64, 10**400])
)
scalars = st.none() | st.booleans() | numbers | texts
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=30,
)
variables = st.dictionaries(texts, json_values, max_size=6)
deep = st.integers(min_value=1, max_value=90).map(lambda n: {"d": _nest(n)})


def _nest(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value]
    return value


def _same_json(sent: Any, read: Any) -> bool:
    """Equal as JSON numbers are: ``2.0`` is ``2``."""
    if isinstance(sent, dict):
        return (
            isinstance(read, dict)
            and sent.keys() == read.keys()
            and all(_same_json(sent[k], read[k]) for k in sent)
        )
    if isinstance(sent, list):
        return (
            isinstance(read, list)
            and len(sent) == len(read)
            and all(_same_json(a, b) for a, b in zip(sent, read, strict=True))
        )
    if isinstance(sent, float) and isinstance(read, int | float):
        return math.isclose(sent, read, rel_tol=0, abs_tol=0) or sent == read
    return bool(sent == read)


class Rest:
    def __init__(self, base: str) -> None:
        self.base = base

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body, allow_nan=False).encode()
        request = urllib.request.Request(
            self.base + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                raw = response.read()
                return response.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            return exc.code, json.loads(raw) if raw else None


@pytest.fixture(scope="module")
def engine(pg_cluster: TestCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rest]:
    pg_cluster.prepare_template(migrate.migrate_sync)
    process = EngineProcess(
        pg_cluster.new_database(), Path(tmp_path_factory.mktemp("engine")) / "engine.log"
    )
    process.start()
    rest = Rest(process.rest_url)
    rest.grpc_port = process.grpc_port  # type: ignore[attr-defined]
    status, _ = rest.call("POST", "/v1/definitions", DEFINITION)
    assert status == 201
    try:
        yield rest
    finally:
        assert process.stop() == 0, process.log()[-3000:]


def _advance(engine: Rest, instance: dict[str, Any], sent: dict[str, Any]) -> None:
    """Read, list, poll and complete an accepted instance; it must end COMPLETED."""
    instance_id = instance["id"]
    status, read = engine.call("GET", f"/v1/instances/{instance_id}")
    assert status == 200
    assert _same_json(sent, read["variables"])
    status, page = engine.call("GET", "/v1/instances?definitionId=prop&pageSize=200")
    assert status == 200
    assert instance_id in {i["id"] for i in page["items"]}
    status, polled = engine.call(
        "POST", "/v1/jobs/poll", {"workerId": "prop", "jobTypes": ["prop-work"], "maxJobs": 1}
    )
    assert status == 200
    [job] = polled["jobs"]
    assert job["instanceId"] == instance_id
    assert _same_json(sent, job["variables"])
    status, _ = engine.call("POST", f"/v1/jobs/{job['id']}/complete", {"variables": sent})
    assert status == 204
    status, done = engine.call("GET", f"/v1/instances/{instance_id}")
    assert done["status"] == "COMPLETED", done


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sent=variables | deep, business_key=st.none() | texts)
def test_rest_start_answers_2xx_or_4xx_and_what_it_accepts_runs_to_the_end(
    engine: Rest, sent: dict[str, Any], business_key: str | None
) -> None:
    body: dict[str, Any] = {"definitionId": "prop", "variables": sent}
    if business_key is not None:
        body["businessKey"] = business_key
    status, answer = engine.call("POST", "/v1/instances", body)

    assert status in (201, 400), answer
    if status == 400:
        assert answer["error"] == "bad-request"
        assert answer["reason"]
        return
    _advance(engine, answer, sent)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sent=variables | deep, business_key=texts)
def test_grpc_start_answers_ok_or_invalid_argument_and_what_it_accepts_runs_to_the_end(
    engine: Rest, sent: dict[str, Any], business_key: str
) -> None:
    try:
        struct = convert.struct_from_json(sent)
    except OverflowError:
        assume(False)  # a number no double holds: a Struct cannot even carry it

    async def start() -> pb.StartInstanceResponse:
        channel = Channel("127.0.0.1", engine.grpc_port)  # type: ignore[attr-defined]
        try:
            return await pb.WorkflowEngineStub(channel).start_instance(
                pb.StartInstanceRequest(
                    definition_id="prop",
                    variables=struct,
                    business_key=business_key,
                )
            )
        finally:
            channel.close()

    try:
        started = asyncio.run(start())
    except GRPCError as exc:
        assert exc.status.name == "INVALID_ARGUMENT", exc
        assert exc.message
        return
    # What gRPC carried: numbers as doubles (an integral double within 2**53 reads as int).
    status, read = engine.call("GET", f"/v1/instances/{started.instance.id}")
    assert status == 200
    _advance(engine, read, read["variables"])
