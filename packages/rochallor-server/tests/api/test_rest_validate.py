"""``POST /v1/definitions/validate``: the validator's report, nothing stored."""

from __future__ import annotations

import json
from pathlib import Path

from rest_fakes import Client, FakeService

from rochallor_server.api.rest import serde
from rochallor_server.engine import limits
from rochallor_server.errors import BadRequest
from rochallor_validator import check_definition

CONFORMANCE = Path(__file__).parents[4] / "conformance" / "definitions"

VALID = {
    "id": "SHOP::order",
    "name": "Order",
    "steps": [
        {"id": "pay", "name": "Pay", "type": "SERVICE_TASK", "jobType": "pay", "nextStep": "end"},
        {"id": "end", "name": "Done", "type": "END"},
    ],
}


async def test_a_valid_definition_is_accepted_and_not_stored(
    client: Client, service: FakeService
) -> None:
    response = await client.post("/v1/definitions/validate", data=json.dumps(VALID))

    assert response.status == 200
    assert response.headers["Content-Type"] == "application/json"
    assert await response.json() == {"accepted": True, "errors": [], "warnings": []}
    assert service.calls == []


async def test_errors_carry_code_path_message_and_step(client: Client) -> None:
    document = json.loads(json.dumps(VALID))
    document["steps"][0]["nextStep"] = "nowhere"
    document["steps"][0]["jobType"] = " "

    response = await client.post("/v1/definitions/validate", data=json.dumps(document))

    body = await response.json()
    assert response.status == 200
    assert body["accepted"] is False
    codes = {(e["code"], e["stepId"], e["severity"]) for e in body["errors"]}
    assert ("REF_RESOLVES", "pay", "error") in codes
    assert ("SERVICE_TASK_JOB_TYPE", "pay", "error") in codes
    ref = next(e for e in body["errors"] if e["code"] == "REF_RESOLVES")
    assert ref["path"] == "$.steps[0].nextStep"
    assert "nowhere" in ref["message"]


async def test_warnings_are_reported_without_rejecting(client: Client) -> None:
    document = json.loads(json.dumps(VALID))
    document["steps"][1]["jobType"] = "ignored"

    body = await (await client.post("/v1/definitions/validate", data=json.dumps(document))).json()

    assert body["accepted"] is True
    assert [w["code"] for w in body["warnings"]] == ["INAPPLICABLE_FIELD"]
    assert body["warnings"][0]["stepId"] == "end"


async def test_a_body_that_is_not_json_is_a_parse_error_report(client: Client) -> None:
    response = await client.post("/v1/definitions/validate", data=b'{"id": ')

    body = await response.json()
    assert response.status == 200
    assert body["accepted"] is False
    assert [e["code"] for e in body["errors"]] == ["PARSE_ERROR"]
    assert body["errors"][0]["message"].startswith("parse error: ")


async def test_a_document_beyond_the_input_limits_is_reported(
    client: Client,
) -> None:
    document = json.loads(json.dumps(VALID))
    nested: object = "deep"
    for _ in range(200):
        nested = [nested]
    document["metadata"] = {"x": nested}

    body = await (await client.post("/v1/definitions/validate", data=json.dumps(document))).json()

    assert body["accepted"] is False
    assert [e["code"] for e in body["errors"]] == ["LIMIT_EXCEEDED"]
    assert body["errors"][0]["message"].startswith("definition.metadata.x")


async def test_the_report_is_what_the_upload_would_decide_for_every_conformance_file(
    client: Client,
) -> None:
    """The validator's own report, except where the server's decoder or input limits refuse the
    document before validation (as the upload does)."""
    files = sorted(CONFORMANCE.rglob("*.json"))
    assert files
    refused_before_validation = 0
    for path in files:
        raw = path.read_bytes()

        body = await (await client.post("/v1/definitions/validate", data=raw)).json()

        try:
            problem = limits.json_problem(serde.decode_definition(raw), "definition")
        except BadRequest as exc:
            problem = exc.message
            code = "PARSE_ERROR"
        else:
            code = "LIMIT_EXCEEDED"
        if problem is not None:
            refused_before_validation += 1
            assert body["errors"] == [
                {"code": code, "path": "$", "message": problem,
                 "severity": "error", "stepId": None}
            ], path.name  # fmt: skip
            continue
        expected = check_definition(raw)
        assert body["accepted"] == expected.accepted, path.name
        assert [(e["code"], e["path"]) for e in body["errors"]] == [
            (e.code, e.path) for e in expected.errors
        ], path.name
    assert 0 < refused_before_validation < len(files)


async def test_expression_errors_carry_their_position(client: Client) -> None:
    document = json.loads(json.dumps(VALID))
    document["steps"].insert(
        1,
        {"id": "route", "name": "Route", "type": "DECISION",
         "conditionalNextSteps": {"total >": "end"}},
    )  # fmt: skip
    document["steps"][0]["nextStep"] = "route"

    body = await (await client.post("/v1/definitions/validate", data=json.dumps(document))).json()

    [error] = body["errors"]
    assert error["code"] == "DECISION_EXPR_SYNTAX"
    assert error["path"] == "$.steps[1].conditionalNextSteps[0].condition"
    assert error["position"] == 7
