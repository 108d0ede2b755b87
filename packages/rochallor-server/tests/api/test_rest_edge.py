"""What every route shares: CORS, routing errors, size limit, error mapping, encoding."""

from __future__ import annotations

import json
import logging

import pytest
from rest_fakes import Client, ClientFactory, FakeService

from rochallor_server.api.rest import app as rest_app
from rochallor_server.errors import RochallorError, StorageError

ORIGIN = "http://modeller.local"
CORS = {
    "Access-Control-Allow-Origin": ORIGIN,
    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
    "Access-Control-Allow-Headers": "Accept, Authorization, Content-Type",
    "Vary": "Origin",
}


def assert_cors(headers: object) -> None:
    for name, value in CORS.items():
        assert headers[name] == value  # type: ignore[index]


@pytest.mark.parametrize("path", ["/v1/definitions", "/v1/jobs/poll", "/nowhere"])
async def test_preflight_from_a_configured_origin_is_answered_before_routing(
    make_client: ClientFactory, service: FakeService, path: str
) -> None:
    client = await make_client(service, cors_origins=[ORIGIN])
    response = await client.options(
        path,
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )

    assert response.status == 200
    assert_cors(response.headers)
    assert response.headers["Access-Control-Max-Age"] == "300"
    assert "Access-Control-Allow-Credentials" not in response.headers
    assert not service.calls


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/v1/instances/x", 200),
        ("POST", "/v1/jobs/j/complete", 204),
        ("GET", "/v1/nowhere", 404),
        ("DELETE", "/v1/instances", 405),
        ("POST", "/v1/instances", 400),
    ],
)
async def test_cors_headers_on_every_answer_to_a_configured_origin(
    make_client: ClientFactory, service: FakeService, method: str, path: str, status: int
) -> None:
    client = await make_client(service, cors_origins=[ORIGIN])
    response = await client.request(
        method, path, data=b"{}" if status == 204 else b"", headers={"Origin": ORIGIN}
    )

    assert response.status == status
    assert_cors(response.headers)


async def test_authorization_and_json_content_type_on_get_are_accepted(client: Client) -> None:
    response = await client.get(
        "/v1/instances/x",
        headers={"Content-Type": "application/json", "Authorization": "Bearer whatever"},
    )

    assert response.status == 200


@pytest.mark.parametrize(
    "path", ["/v1/nowhere", "/v1/instances/", "/v1/user-tasks/t/complete", "/v1/definitions/a/b"]
)
async def test_unknown_route_is_plain_text_404(client: Client, path: str) -> None:
    response = await client.post(path, json={})

    assert response.status == 404
    assert response.headers["Content-Type"].startswith("text/plain")
    assert await response.text() == "404 page not found"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("DELETE", "/v1/instances"),
        ("PUT", "/v1/definitions/x"),
        ("GET", "/v1/jobs/poll"),
        ("GET", "/v1/instances/x/cancel"),
        ("POST", "/healthz"),
    ],
)
async def test_wrong_method_is_405_with_an_empty_body(
    client: Client, service: FakeService, method: str, path: str
) -> None:
    response = await client.request(method, path)

    assert response.status == 405
    assert await response.read() == b""
    assert not service.calls


@pytest.mark.parametrize(
    "path",
    [
        "/v1/definitions",
        "/v1/instances",
        "/v1/instances/i/cancel",
        "/v1/jobs/poll",
        "/v1/jobs/j/complete",
        "/v1/instances/i/signals/s",
    ],
)
async def test_body_over_the_limit_is_413_json(
    make_client: ClientFactory, service: FakeService, path: str
) -> None:
    client = await make_client(service, client_max_size=64)

    response = await client.post(path, data=json.dumps({"workerId": "w" * 100}).encode())

    assert response.status == 413
    assert response.headers["Content-Type"] == "application/json"
    body = await response.json()
    assert body["error"] == "bad-request"
    assert body["reason"] == "request body exceeds 64 bytes"
    assert not service.calls


async def test_storage_error_is_500_with_its_message(
    client: Client, service: FakeService, caplog: pytest.LogCaptureFixture
) -> None:
    service.fail("get_instance", StorageError("could not connect to server"))

    with caplog.at_level(logging.ERROR, logger="rochallor_server.api.rest.errors"):
        response = await client.get("/v1/instances/x")

    assert response.status == 500
    assert await response.json() == {
        "error": "internal-error",
        "reason": "could not connect to server",
        "message": "could not connect to server",
    }
    assert "could not connect to server" in caplog.text


@pytest.mark.parametrize(
    "error", [RuntimeError("secret internals"), RochallorError("secret internals")]
)
async def test_unexpected_error_is_logged_and_not_leaked(
    client: Client, service: FakeService, caplog: pytest.LogCaptureFixture, error: Exception
) -> None:
    service.fail("get_instance", error)

    with caplog.at_level(logging.ERROR, logger="rochallor_server.api.rest.errors"):
        response = await client.get("/v1/instances/x")

    assert response.status == 500
    text = await response.text()
    assert json.loads(text) == {
        "error": "internal-error",
        "reason": "internal error",
        "message": "internal error",
    }
    assert "secret" not in text and "Traceback" not in text
    (record,) = [r for r in caplog.records if r.name == "rochallor_server.api.rest.errors"]
    assert record.exc_info is not None


async def test_json_responses_declare_application_json(client: Client) -> None:
    for response in (
        await client.get("/v1/instances/x"),
        await client.get("/v1/definitions"),
        await client.post("/v1/instances", data=b""),
    ):
        assert response.headers["Content-Type"] == "application/json"


async def test_healthz(client: Client, service: FakeService) -> None:
    response = await client.get("/healthz")

    assert response.status == 200
    assert await response.read() == b""
    assert not service.calls


async def test_request_metrics_use_the_route_template(client: Client) -> None:
    await client.get("/v1/instances/abc")
    await client.get("/v1/nowhere")

    metrics = client.app[rest_app.METRICS_KEY].exposition().decode()
    assert 'path="/v1/instances/{id}",status="200"' in metrics
    assert 'path="unmatched",status="404"' in metrics
