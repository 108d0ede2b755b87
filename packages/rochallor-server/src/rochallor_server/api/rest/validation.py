"""``POST /v1/definitions/validate``: the validator's report on a definition, nothing stored.

The browser modeller validates while the user types by calling this endpoint, so the rules live
in one place (``rochallor-validator``). The handler needs no engine: the offline
``rochallor-modeller`` mounts it too.
"""

from __future__ import annotations

from aiohttp import web

from rochallor_server.api.rest import serde
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


def report(body: bytes) -> dict[str, object]:
    """``{accepted, errors[], warnings[]}`` for a request body (any bytes).

    A body that is not a JSON object is a report with a ``PARSE_ERROR`` issue, not an HTTP
    error: the question asked is "what is wrong with this document".
    """
    result = check_definition(body)
    return {
        "accepted": result.accepted,
        "errors": [_issue(i) for i in result.errors],
        "warnings": [_issue(i) for i in result.warnings],
    }


async def validate_definition(request: web.Request) -> web.Response:
    return web.Response(
        body=serde.dumps(report(await request.read())), content_type="application/json"
    )
