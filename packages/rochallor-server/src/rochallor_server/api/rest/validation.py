"""``POST /v1/definitions/validate``: the validator's report on a definition, nothing stored.

The browser modeller validates while the user types by calling this endpoint, so the rules live
in one place (``rochallor-validator``). The handler needs no engine: the offline
``rochallor-modeller`` mounts it too.
"""

from __future__ import annotations

from aiohttp import web

from rochallor_server.api.rest import serde
from rochallor_server.engine import limits
from rochallor_server.errors import BadRequest
from rochallor_validator import ValidationIssue, check_definition

VALIDATE_PATH = "/v1/definitions/validate"


def _issue(issue: ValidationIssue) -> dict[str, str | int | None]:
    out: dict[str, str | int | None] = {
        "code": issue.code,
        "path": issue.path,
        "message": issue.message,
        "severity": issue.severity,
        "stepId": issue.step_id,
    }
    if issue.position is not None:
        out["position"] = issue.position
    return out


def _refused(code: str, message: str) -> dict[str, object]:
    issue = {"code": code, "path": "$", "message": message, "severity": "error", "stepId": None}
    return {"accepted": False, "errors": [issue], "warnings": []}


def report(body: bytes) -> dict[str, object]:
    """``{accepted, errors[], warnings[]}`` for a request body (any bytes).

    The checks are the upload's, in the same order: the body must decode as a JSON object
    (else one ``PARSE_ERROR`` issue), stay within the input limits (else one
    ``LIMIT_EXCEEDED`` issue; ``docs/limits.md``), then pass the validator. Each answer is
    200: the question asked is "what is wrong with this document".
    """
    try:
        document = serde.decode_definition(body)
    except BadRequest as exc:
        return _refused("PARSE_ERROR", exc.message)
    problem = limits.json_problem(document, "definition")
    if problem is not None:
        return _refused("LIMIT_EXCEEDED", problem)
    result = check_definition(document)
    return {
        "accepted": result.accepted,
        "errors": [_issue(i) for i in result.errors],
        "warnings": [_issue(i) for i in result.warnings],
    }


async def validate_definition(request: web.Request) -> web.Response:
    return web.Response(
        body=serde.dumps(report(await request.read())), content_type="application/json"
    )
