"""The shipped OpenAPI document describes exactly the routes and status codes served.

Every (operation, status) pair documented has a scenario below that produces it, and every
scenario's pair is documented: adding a route, a status or a documented response without the
other side fails here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import attrs
import pytest
from rest_fakes import Client, ClientFactory, FakeService

from rochallor_server import auth
from rochallor_server.api.rest import app as rest_app
from rochallor_server.api.rest import routes
from rochallor_server.config import DispatchMode, EngineSettings
from rochallor_server.errors import (
    BadRequest,
    Conflict,
    NotFound,
    StorageError,
    StorageUnavailable,
)
from rochallor_server.metrics import Metrics

_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
DOCUMENT: dict[str, Any] = json.loads(routes.load_openapi())


@attrs.frozen(kw_only=True)
class Scenario:
    path: str
    body: bytes | None = None
    headers: dict[str, str] = attrs.field(factory=dict)
    fail: tuple[str, Exception] | None = None
    options: dict[str, Any] = attrs.field(factory=dict)
    settings: EngineSettings = attrs.field(factory=EngineSettings)


def _errors(
    method: str,
    template: str,
    path: str,
    engine_method: str | None,
    *,
    body: bytes | None,
    statuses: dict[int, Exception | bytes],
) -> Iterator[tuple[tuple[str, str, int], Scenario]]:
    """Error scenarios: a service exception to raise, or a request body that fails parsing."""
    for status, cause in statuses.items():
        if isinstance(cause, bytes):
            yield (method, template, status), Scenario(path=path, body=cause)
        else:
            assert engine_method is not None
            yield (
                (method, template, status),
                Scenario(path=path, body=body, fail=(engine_method, cause)),
            )


TOO_LARGE = Scenario(path="", body=b'{"x": "' + b"y" * 100 + b'"}', options={"client_max_size": 32})
STORAGE = StorageError("database failure")
UNAVAILABLE = StorageUnavailable("database unavailable: ConnectionRefusedError")
BATCH = b'{"completions": [{"jobId": "j"}]}'
BULK_RETRY = b'{"filter": {"definitionId": "d"}}'
BATCH_START = b'{"instances": [{"definitionId": "d"}]}'
DEFINITION = b'{"id": "d", "name": "D", "steps": [{"id": "a", "name": "A", "type": "END"}]}'


class _BrokenKeys(auth.MemoryKeyStore):
    async def insert_key(self, key: auth.ApiKey, secret_sha256: bytes) -> None:
        raise STORAGE

    async def list_keys(self) -> list[auth.ApiKey]:
        raise STORAGE

    async def revoke_key(self, key_id: str, at: object) -> auth.ApiKey | None:
        raise STORAGE


def _keys_with(key_id: str) -> auth.AccessControl:
    store = auth.MemoryKeyStore()
    record, _token, digest = auth.new_key(name="k", role="viewer", job_types=None, created_by=None)
    store.keys[key_id] = auth.StoredKey(key=attrs.evolve(record, id=key_id), secret_sha256=digest)
    return auth.AccessControl(store, enforce=False)


class _AwayKeys(auth.MemoryKeyStore):
    async def insert_key(self, key: auth.ApiKey, secret_sha256: bytes) -> None:
        raise UNAVAILABLE

    async def list_keys(self) -> list[auth.ApiKey]:
        raise UNAVAILABLE

    async def revoke_key(self, key_id: str, at: object) -> auth.ApiKey | None:
        raise UNAVAILABLE


BROKEN_KEYS = {"access": auth.AccessControl(_BrokenKeys(), enforce=False)}
AWAY_KEYS = {"access": auth.AccessControl(_AwayKeys(), enforce=False)}
NEW_KEY = b'{"name": "ci", "role": "worker", "jobTypes": ["t"]}'


def _scenarios() -> dict[tuple[str, str, int], Scenario]:
    table: dict[tuple[str, str, int], Scenario] = {
        ("GET", "/healthz", 200): Scenario(path="/healthz"),
        ("GET", "/readyz", 200): Scenario(path="/readyz"),
        ("GET", "/readyz", 503): Scenario(path="/readyz", fail=("check_database", UNAVAILABLE)),
        ("GET", "/v1/openapi.json", 200): Scenario(path="/v1/openapi.json"),
        # definitions
        ("POST", "/v1/definitions", 201): Scenario(path="/v1/definitions", body=DEFINITION),
        ("POST", "/v1/definitions/validate", 200): Scenario(
            path="/v1/definitions/validate", body=DEFINITION
        ),
        ("POST", "/v1/definitions/validate", 413): attrs.evolve(
            TOO_LARGE, path="/v1/definitions/validate"
        ),
        ("POST", "/v1/definitions/validate", 415): Scenario(
            path="/v1/definitions/validate", body=b"<x/>", headers={"Content-Type": "text/xml"}
        ),
        ("POST", "/v1/definitions", 415): Scenario(
            path="/v1/definitions", body=b"<x/>", headers={"Content-Type": "text/xml"}
        ),
        ("GET", "/v1/definitions", 200): Scenario(path="/v1/definitions"),
        ("GET", "/v1/definitions/{id}", 200): Scenario(path="/v1/definitions/d"),
        ("GET", "/v1/definitions/{id}/versions/{version}", 200): Scenario(
            path="/v1/definitions/d/versions/1"
        ),
        ("GET", "/v1/definitions/{id}/versions/{version}", 400): Scenario(
            path="/v1/definitions/d/versions/one"
        ),
        # instances
        ("GET", "/v1/instances", 200): Scenario(path="/v1/instances"),
        ("POST", "/v1/instances", 201): Scenario(
            path="/v1/instances", body=b'{"definitionId":"d"}'
        ),
        ("GET", "/v1/instances/{id}", 200): Scenario(path="/v1/instances/i"),
        ("GET", "/v1/instances/{id}/history", 200): Scenario(path="/v1/instances/i/history"),
        ("POST", "/v1/instances/{id}/cancel", 200): Scenario(path="/v1/instances/i/cancel"),
        ("POST", "/v1/instances/{instanceId}/user-tasks/{userTaskId}/complete", 204): Scenario(
            path="/v1/instances/i/user-tasks/t/complete"
        ),
        ("POST", "/v1/instances/{instanceId}/signals/{waitStepId}", 204): Scenario(
            path="/v1/instances/i/signals/w"
        ),
        # jobs
        ("POST", "/v1/jobs/poll", 200): Scenario(
            path="/v1/jobs/poll", body=b'{"workerId":"w","jobTypes":["t"]}'
        ),
        ("POST", "/v1/jobs/poll", 410): Scenario(
            path="/v1/jobs/poll",
            body=b'{"workerId":"w","jobTypes":["t"]}',
            settings=EngineSettings(dispatch_mode=DispatchMode.KAFKA_OUTBOX),
        ),
        ("POST", "/v1/jobs/{id}/complete", 204): Scenario(path="/v1/jobs/j/complete", body=b"{}"),
        ("POST", "/v1/instances/batch", 200): Scenario(
            path="/v1/instances/batch", body=BATCH_START
        ),
        ("POST", "/v1/jobs/batch-complete", 200): Scenario(
            path="/v1/jobs/batch-complete", body=BATCH
        ),
        ("POST", "/v1/jobs/{id}/fail", 204): Scenario(path="/v1/jobs/j/fail", body=b"{}"),
        ("POST", "/v1/jobs/{id}/extend", 200): Scenario(
            path="/v1/jobs/j/extend", body=b'{"workerId":"w"}'
        ),
        # operations
        ("GET", "/v1/definitions/{id}/versions", 200): Scenario(path="/v1/definitions/d/versions"),
        ("GET", "/v1/instances/counts", 200): Scenario(path="/v1/instances/counts"),
        ("GET", "/v1/instances/counts", 400): Scenario(
            path="/v1/instances/counts?definitionVersion=x"
        ),
        ("POST", "/v1/instances/retry", 200): Scenario(path="/v1/instances/retry", body=BULK_RETRY),
        ("POST", "/v1/instances/{id}/retry", 200): Scenario(path="/v1/instances/i/retry"),
        ("GET", "/v1/instances/{id}/audit", 200): Scenario(path="/v1/instances/i/audit"),
        ("GET", "/v1/instances/{id}/links", 200): Scenario(path="/v1/instances/i/links"),
        ("GET", "/v1/jobs/queues", 200): Scenario(path="/v1/jobs/queues"),
        ("GET", "/v1/jobs/queues", 400): Scenario(path="/v1/jobs/queues?workerWindowSeconds=0"),
        ("GET", "/v1/jobs/exhausted", 200): Scenario(path="/v1/jobs/exhausted"),
        # keys
        ("POST", "/v1/admin/keys", 201): Scenario(path="/v1/admin/keys", body=NEW_KEY),
        ("POST", "/v1/admin/keys", 400): Scenario(path="/v1/admin/keys", body=b'{"name": "x"}'),
        ("POST", "/v1/admin/keys", 500): Scenario(
            path="/v1/admin/keys", body=NEW_KEY, options=BROKEN_KEYS
        ),
        ("GET", "/v1/admin/keys", 200): Scenario(path="/v1/admin/keys"),
        ("GET", "/v1/admin/keys", 500): Scenario(path="/v1/admin/keys", options=BROKEN_KEYS),
        ("POST", "/v1/admin/keys/{id}/revoke", 200): Scenario(
            path="/v1/admin/keys/0123456789ab/revoke",
            options={"access": _keys_with("0123456789ab")},
        ),
        ("POST", "/v1/admin/keys/{id}/revoke", 404): Scenario(path="/v1/admin/keys/nope/revoke"),
        ("POST", "/v1/admin/keys/{id}/revoke", 500): Scenario(
            path="/v1/admin/keys/nope/revoke", options=BROKEN_KEYS
        ),
        ("POST", "/v1/admin/keys", 503): Scenario(
            path="/v1/admin/keys", body=NEW_KEY, options=AWAY_KEYS
        ),
        ("GET", "/v1/admin/keys", 503): Scenario(path="/v1/admin/keys", options=AWAY_KEYS),
        ("POST", "/v1/admin/keys/{id}/revoke", 503): Scenario(
            path="/v1/admin/keys/nope/revoke", options=AWAY_KEYS
        ),
    }
    errors: list[
        tuple[str, str, str, str | None, bytes | None, dict[int, Exception | bytes]]
    ] = [
        ("POST", "/v1/definitions", "/v1/definitions", "upload_definition", DEFINITION,
         {400: b"[]", 500: STORAGE}),
        ("GET", "/v1/definitions", "/v1/definitions", "list_definitions", None,
         {400: BadRequest("keyword must be at most 256 characters"), 500: STORAGE}),
        ("GET", "/v1/definitions/{id}", "/v1/definitions/d", "get_definition", None,
         {400: BadRequest("id must be at most 256 characters"),
          404: NotFound("definition not found"), 500: STORAGE}),
        ("GET", "/v1/definitions/{id}/versions/{version}", "/v1/definitions/d/versions/1",
         "get_definition", None, {404: NotFound("definition not found"), 500: STORAGE}),
        ("GET", "/v1/instances", "/v1/instances", "list_instances", None,
         {400: BadRequest("status must be at most 256 characters"), 500: STORAGE}),
        ("POST", "/v1/instances", "/v1/instances", "start_instance", b'{"definitionId":"d"}',
         {400: b"[]", 404: NotFound("definition not found"), 500: STORAGE}),
        ("GET", "/v1/instances/{id}", "/v1/instances/i", "get_instance", None,
         {400: BadRequest("id must be at most 256 characters"),
          404: NotFound("instance not found"), 500: STORAGE}),
        ("GET", "/v1/instances/{id}/history", "/v1/instances/i/history", "history", None,
         {400: BadRequest("id must be at most 256 characters"), 500: STORAGE}),
        ("POST", "/v1/instances/{id}/cancel", "/v1/instances/i/cancel", "cancel_instance", None,
         {400: BadRequest("id must be at most 256 characters"),
          404: NotFound("instance not found"), 409: Conflict("terminal"), 500: STORAGE}),
        ("POST", "/v1/instances/{instanceId}/user-tasks/{userTaskId}/complete",
         "/v1/instances/i/user-tasks/t/complete", "complete_user_task", None,
         {400: BadRequest("step type does not match the endpoint"),
          404: NotFound("user task not found"), 409: Conflict("terminal"), 500: STORAGE}),
        ("POST", "/v1/instances/{instanceId}/signals/{waitStepId}",
         "/v1/instances/i/signals/w", "signal", None,
         {400: b"[]", 404: NotFound("workflow instance not found"), 409: Conflict("not parked"),
          500: STORAGE}),
        ("POST", "/v1/jobs/poll", "/v1/jobs/poll", "poll_jobs",
         b'{"workerId":"w","jobTypes":["t"]}', {400: b"[]", 500: STORAGE}),
        ("POST", "/v1/jobs/{id}/complete", "/v1/jobs/j/complete", "complete_job", b"{}",
         {400: b"", 404: NotFound("job not found"), 500: STORAGE}),
        ("POST", "/v1/instances/batch", "/v1/instances/batch", None, BATCH_START,
         {400: b'{"instances": []}'}),
        ("POST", "/v1/jobs/batch-complete", "/v1/jobs/batch-complete", None, BATCH,
         {400: b'{"completions": []}'}),
        ("POST", "/v1/jobs/{id}/fail", "/v1/jobs/j/fail", "fail_job", b"{}",
         {400: b"", 404: NotFound("job not found"), 500: STORAGE}),
        ("POST", "/v1/jobs/{id}/extend", "/v1/jobs/j/extend", "extend_job_lease",
         b'{"workerId":"w"}',
         {400: b"[]", 404: NotFound("job not found"), 409: Conflict("not yours"), 500: STORAGE}),
        ("GET", "/v1/definitions/{id}/versions", "/v1/definitions/d/versions",
         "definition_versions", None,
         {400: BadRequest("id must be at most 256 characters"),
          404: NotFound("definition not found"), 500: STORAGE}),
        ("GET", "/v1/instances/counts", "/v1/instances/counts", "count_instances", None,
         {500: STORAGE}),
        ("POST", "/v1/instances/retry", "/v1/instances/retry", "retry_instances", BULK_RETRY,
         {400: b'{"instanceIds": ["i"], "filter": {}}', 500: STORAGE}),
        ("POST", "/v1/instances/{id}/retry", "/v1/instances/i/retry", "retry_instance", None,
         {400: b'{"variables": 1}', 404: NotFound("instance not found"),
          409: Conflict("instance is ACTIVE"), 500: STORAGE}),
        ("GET", "/v1/instances/{id}/audit", "/v1/instances/i/audit", "instance_audit", None,
         {400: BadRequest("id must be at most 256 characters"),
          404: NotFound("instance not found"), 500: STORAGE}),
        ("GET", "/v1/instances/{id}/links", "/v1/instances/i/links", "chain_links", None,
         {400: BadRequest("id must be at most 256 characters"),
          404: NotFound("instance not found"), 500: STORAGE}),
        ("GET", "/v1/jobs/queues", "/v1/jobs/queues", "job_queues", None, {500: STORAGE}),
        ("GET", "/v1/jobs/exhausted", "/v1/jobs/exhausted", "exhausted_jobs", None,
         {400: BadRequest("jobType must be at most 256 characters"), 500: STORAGE}),
    ]  # fmt: skip
    for method, template, path, engine_method, body, statuses in errors:
        if 500 in statuses:  # every operation that reads or writes the database
            statuses = {**statuses, 503: UNAVAILABLE}
        table.update(_errors(method, template, path, engine_method, body=body, statuses=statuses))
        if method == "POST":
            table[(method, template, 413)] = attrs.evolve(TOO_LARGE, path=path)
    table[("POST", "/v1/admin/keys", 413)] = attrs.evolve(TOO_LARGE, path="/v1/admin/keys")
    return table


SCENARIOS = _scenarios()


def _documented_operations() -> dict[tuple[str, str], set[int]]:
    return {
        (method.upper(), path): {int(status) for status in operation["responses"]}
        for path, item in DOCUMENT["paths"].items()
        for method, operation in item.items()
        if method in _METHODS
    }


def test_document_is_openapi_3_1() -> None:
    assert DOCUMENT["openapi"].startswith("3.1.")
    operation_ids = [
        operation["operationId"]
        for item in DOCUMENT["paths"].values()
        for method, operation in item.items()
        if method in _METHODS
    ]
    assert len(operation_ids) == len(set(operation_ids))


def test_every_reference_resolves() -> None:
    def refs(node: object) -> Iterator[str]:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "$ref":
                    yield value
                else:
                    yield from refs(value)
        elif isinstance(node, list):
            for value in node:
                yield from refs(value)

    for ref in refs(DOCUMENT):
        _, section, kind, name = ref.split("/")
        assert DOCUMENT[section][kind][name] is not None, ref


def test_router_and_document_list_the_same_operations() -> None:
    app = rest_app.make_app(Metrics(), FakeService())
    served = {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        # aiohttp adds HEAD next to every GET; preflight OPTIONS never reaches the router.
        if route.method != "HEAD" and route.resource is not None
    }

    assert served == set(_documented_operations())


def test_every_documented_status_has_a_scenario_and_vice_versa() -> None:
    documented = {
        (method, path, status)
        for (method, path), statuses in _documented_operations().items()
        for status in statuses
    }

    assert documented == set(SCENARIOS)


@pytest.mark.parametrize(
    ("method", "template", "status"), sorted(SCENARIOS), ids=lambda value: str(value)
)
async def test_scenario_produces_the_documented_status(
    make_client: ClientFactory, method: str, template: str, status: int
) -> None:
    scenario = SCENARIOS[(method, template, status)]
    service = FakeService(scenario.settings)
    if scenario.fail is not None:
        service.fail(*scenario.fail)
    client = await make_client(service, **scenario.options)

    response = await client.request(
        method, scenario.path, data=scenario.body, headers=scenario.headers
    )

    assert response.status == status
    if status == 503:
        assert response.headers["Retry-After"] == "2"
    if status >= 400:
        assert response.headers["Content-Type"] == "application/json"
        body = await response.json()
        assert set(body) <= {"error", "reason", "message", "details", "dispatch_mode", "hint"}


async def test_document_is_served(client: Client) -> None:
    response = await client.get("/v1/openapi.json")

    assert response.status == 200
    assert response.headers["Content-Type"] == "application/json"
    assert await response.json() == DOCUMENT


def test_template_parameters_are_declared() -> None:
    for path, item in DOCUMENT["paths"].items():
        names = {part[1:-1] for part in path.split("/") if part.startswith("{")}
        for method, operation in item.items():
            if method not in _METHODS:
                continue
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert declared == names, (method, path)
