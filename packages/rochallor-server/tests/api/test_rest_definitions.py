"""Definition endpoints (``rest-api.md`` §5)."""

from __future__ import annotations

import json

import pytest
from rest_fakes import Client, FakeService, definition_record
from yarl import URL

from rochallor_server.errors import (
    BadRequest,
    DefinitionRejected,
    NotFound,
    StorageError,
    Violation,
)
from rochallor_server.service.ports import Page
from rochallor_server.service.workflow_service import UploadResult

UPLOAD = (
    b'{"id":"LOS::loan","version":9,"name":"Loan","steps":[{"id":"a","name":"A","type":"END"}]}'
)


async def test_upload_answers_201_with_the_summary(client: Client, service: FakeService) -> None:
    response = await client.post("/v1/definitions", data=UPLOAD)

    assert response.status == 201
    assert response.headers["Content-Type"] == "application/json"
    raw = await response.read()
    assert json.loads(raw) == {
        "id": "LOS::loan",
        "version": 3,
        "name": "Loan",
        "uploadedAt": "2025-03-01T12:34:56.789012Z",
    }
    assert b'"version":3,' in raw  # an integer literal, never 3.0
    document = service.last("upload_definition")["document"]
    assert document == json.loads(UPLOAD)
    assert list(document) == ["id", "version", "name", "steps"]


async def test_upload_lists_warnings_with_step_id_omitted_when_none(
    client: Client, service: FakeService
) -> None:
    service.results["upload_definition"] = UploadResult(
        record=definition_record(),
        created=True,
        warnings=[
            Violation("GRAPH_CYCLE", "steps a -> b -> a form a cycle", None),
            Violation("INAPPLICABLE_FIELD", "jobType is ignored on END", "a", "steps[0].jobType"),
        ],
    )

    response = await client.post("/v1/definitions", data=UPLOAD)

    assert response.status == 201
    assert (await response.json())["warnings"] == [
        {"code": "GRAPH_CYCLE", "message": "steps a -> b -> a form a cycle"},
        {"code": "INAPPLICABLE_FIELD", "message": "jobType is ignored on END", "stepId": "a"},
    ]


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=utf-8", "Application/JSON"]
)
async def test_upload_accepts_json_with_any_parameters(
    client: Client, service: FakeService, content_type: str
) -> None:
    headers = {"Content-Type": content_type}
    response = await client.post("/v1/definitions", data=UPLOAD, headers=headers)
    assert response.status == 201


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
async def test_upload_refuses_other_content_types(
    client: Client, service: FakeService, content_type: str
) -> None:
    # A browser may send these to any origin without a preflight (docs/security.md).
    headers = {"Content-Type": content_type}
    response = await client.post("/v1/definitions", data=UPLOAD, headers=headers)
    assert response.status == 415
    assert (await response.json())["error"] == "unsupported-format"
    assert not service.calls


@pytest.mark.parametrize(
    "content_type", ["application/xml", "application/xml; charset=utf-8", "text/xml"]
)
@pytest.mark.parametrize("path", ["/v1/definitions", "/v1/definitions/x/anything"])
async def test_xml_under_definitions_is_refused_with_415(
    client: Client, service: FakeService, content_type: str, path: str
) -> None:
    response = await client.post(path, data=b"<workflow/>", headers={"Content-Type": content_type})

    assert response.status == 415
    body = await response.json()
    assert body["error"] == "unsupported-format"
    assert body["reason"] == "Only JSON workflow definitions are accepted"
    assert not service.calls


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "parse error: EOF"),
        (b"  \n", "parse error: EOF"),
        (b"[]", "parse error: a workflow definition must be a JSON object"),
        (b"null", "parse error: a workflow definition must be a JSON object"),
    ],
)
async def test_upload_body_must_be_a_json_object(
    client: Client, service: FakeService, raw: bytes, reason: str
) -> None:
    response = await client.post("/v1/definitions", data=raw)

    assert response.status == 400
    assert await response.json() == {"error": "bad-request", "reason": reason, "message": reason}
    assert not service.calls


async def test_upload_malformed_json_is_a_parse_error(client: Client) -> None:
    response = await client.post("/v1/definitions", data=b'{"id": ')

    assert response.status == 400
    assert (await response.json())["reason"].startswith("parse error: ")


async def test_upload_strict_parse_error_from_the_service(
    client: Client, service: FakeService
) -> None:
    service.fail("upload_definition", BadRequest('parse error: unknown field "colour"'))

    response = await client.post("/v1/definitions", data=UPLOAD)

    assert response.status == 400
    assert (await response.json())["reason"] == 'parse error: unknown field "colour"'


async def test_upload_validation_failure_lists_details(
    client: Client, service: FakeService
) -> None:
    service.fail(
        "upload_definition",
        DefinitionRejected(
            [
                Violation("STEPS_NOT_EMPTY", "steps must not be empty", None),
                Violation("REF_RESOLVES", 'nextStep "zz" does not exist', "a", "steps[0]"),
            ]
        ),
    )

    response = await client.post("/v1/definitions", data=UPLOAD)

    assert response.status == 400
    body = await response.json()
    assert body["error"] == "bad-request"
    assert body["reason"] == (
        'validation error:\n  steps must not be empty\n  nextStep "zz" does not exist'
    )
    assert body["details"] == [
        {"code": "STEPS_NOT_EMPTY", "message": "steps must not be empty"},
        {"code": "REF_RESOLVES", "message": 'nextStep "zz" does not exist', "stepId": "a"},
    ]


async def test_upload_storage_failure_is_500(client: Client, service: FakeService) -> None:
    service.fail("upload_definition", StorageError("connection refused"))

    response = await client.post("/v1/definitions", data=UPLOAD)

    assert response.status == 500
    assert (await response.json())["error"] == "internal-error"


async def test_get_definition_returns_the_document_with_version_after_id(
    client: Client, service: FakeService
) -> None:
    response = await client.get("/v1/definitions/LOS::loan")

    assert response.status == 200
    body = await response.json()
    assert list(body) == ["id", "version", "name", "steps", "metadata"]
    assert body["version"] == 3
    assert list(body["metadata"]) == ["z", "a"]
    assert service.last("get_definition") == {"definition_id": "LOS::loan", "version": None}


async def test_definition_id_is_percent_decoded(client: Client, service: FakeService) -> None:
    response = await client.get(URL("/v1/definitions/LOS%3A%3Aloan", encoded=True))

    assert response.status == 200
    assert service.last("get_definition")["definition_id"] == "LOS::loan"


async def test_get_definition_version(client: Client, service: FakeService) -> None:
    service.results["get_definition"] = definition_record(version=2)

    response = await client.get(URL("/v1/definitions/LOS%3A%3Aloan/versions/2", encoded=True))

    assert response.status == 200
    assert (await response.json())["version"] == 2
    assert service.last("get_definition") == {"definition_id": "LOS::loan", "version": 2}


@pytest.mark.parametrize("version", ["abc", "1.5", "2e3", "%20"])
async def test_non_integer_version_is_400(
    client: Client, service: FakeService, version: str
) -> None:
    response = await client.get(URL(f"/v1/definitions/x/versions/{version}", encoded=True))

    assert response.status == 400
    assert (await response.json())["reason"] == "invalid version parameter"
    assert not service.calls


@pytest.mark.parametrize("version", [0, -1])
async def test_any_integer_version_goes_to_the_service(
    client: Client, service: FakeService, version: int
) -> None:
    """The service owns the version bounds (``0``/``-1`` are its 404s, tested there)."""
    await client.get(f"/v1/definitions/x/versions/{version}")

    assert service.calls == [("get_definition", {"definition_id": "x", "version": version})]


@pytest.mark.parametrize("path", ["/v1/definitions/x", "/v1/definitions/x/versions/7"])
async def test_unknown_definition_is_404(client: Client, service: FakeService, path: str) -> None:
    service.fail("get_definition", NotFound("definition not found"))

    response = await client.get(path)

    assert response.status == 404
    assert await response.json() == {
        "error": "not-found",
        "reason": "definition not found",
        "message": "definition not found",
    }


async def test_list_definitions(client: Client, service: FakeService) -> None:
    response = await client.get("/v1/definitions?keyword=loan&page=2&pageSize=5")

    assert response.status == 200
    assert await response.json() == {
        "items": [
            {
                "id": "LOS::loan",
                "version": 3,
                "name": "Loan",
                "uploadedAt": "2025-03-01T12:34:56.789012Z",
            }
        ],
        "total": 1,
    }
    assert service.last("list_definitions") == {"keyword": "loan", "page": 2, "page_size": 5}


async def test_empty_list_is_an_array_never_null(client: Client, service: FakeService) -> None:
    service.results["list_definitions"] = Page(items=[], total=0)

    response = await client.get("/v1/definitions")

    assert await response.read() == b'{"items":[],"total":0}'
    assert service.last("list_definitions") == {"keyword": None, "page": 0, "page_size": 0}


@pytest.mark.parametrize(
    ("query", "page", "page_size"),
    [
        ("", 0, 0),
        ("?page=-3&pageSize=0", -3, 0),
        ("?page=x&pageSize=y", 0, 0),
        ("?page=4&pageSize=-5", 4, -5),
        ("?pageSize=100", 0, 100),
        ("?pageSize=5000", 0, 5000),
        ("?page=1.5&pageSize=2.5", 0, 0),
    ],
)
async def test_pagination_is_parsed_leniently(
    client: Client, service: FakeService, query: str, page: int, page_size: int
) -> None:
    response = await client.get(f"/v1/definitions{query}")

    assert response.status == 200
    call = service.last("list_definitions")
    assert (call["page"], call["page_size"]) == (page, page_size)


async def test_list_definitions_storage_failure_is_500(
    client: Client, service: FakeService
) -> None:
    service.fail("list_definitions", StorageError("connection refused"))

    response = await client.get("/v1/definitions")

    assert response.status == 500
    assert (await response.json())["error"] == "internal-error"
