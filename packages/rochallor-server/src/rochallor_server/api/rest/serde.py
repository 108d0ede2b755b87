"""JSON on the REST wire: encoding of domain records, lenient parsing of request bodies.

Shapes and casing follow ``spec/rest-api.md`` §3. The encoders are explicit functions rather
than a cattrs converter: every resource has its own omission rule (``Instance`` omits unset
fields, ``StepExecution`` prints them as ``null``, a definition keeps its uploaded key order),
and the request bodies are *lenient* (unknown keys ignored, ``null`` means absent), which is
the opposite of a ``forbid_extra_keys`` converter. Spelling the rules out keeps them reviewable
against the spec tables.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from rochallor_server.engine.model import DefinitionRecord, Instance, Job, JsonObject, StepExecution
from rochallor_server.errors import BadRequest, Violation

# -- encoding ----------------------------------------------------------------------------------


def dumps(value: object) -> bytes:
    return orjson.dumps(value)


def timestamp(value: dt.datetime) -> str:
    """RFC 3339 in UTC with a ``Z`` offset, microseconds trimmed of trailing zeros.

    The offset is mandatory on the wire: the Go SDK parses ``lockExpiresAt`` strictly.
    """
    utc = value.astimezone(dt.UTC)
    # isoformat is several times faster than strftime; it omits a zero microsecond part.
    text = utc.replace(tzinfo=None).isoformat()
    if utc.microsecond:
        text = text.rstrip("0")
    return text + "Z"


def _optional_timestamp(value: dt.datetime | None) -> str | None:
    return None if value is None else timestamp(value)


def instance(record: Instance) -> JsonObject:
    out: JsonObject = {
        "id": record.id,
        "definitionId": record.definition_id,
        "definitionVersion": record.definition_version,
        "status": record.status.value,
        "currentStepIds": list(record.current_step_ids),
        "variables": record.variables,
        "startedAt": timestamp(record.started_at),
    }
    if record.completed_at is not None:
        out["completedAt"] = timestamp(record.completed_at)
    # "" is a set value (a cancel without reason); only None is omitted.
    if record.failure_reason is not None:
        out["failureReason"] = record.failure_reason
    if record.business_key is not None:
        out["businessKey"] = record.business_key
    return out


def job(record: Job) -> JsonObject:
    out: JsonObject = {
        "id": record.id,
        "jobType": record.job_type,
        "instanceId": record.instance_id,
        "stepId": record.step_id,
        "stepExecutionId": record.step_execution_id,
        "status": record.status.value,
    }
    if record.worker_id is not None:
        out["workerId"] = record.worker_id
    if record.locked_at is not None:
        out["lockedAt"] = timestamp(record.locked_at)
    if record.lock_expires_at is not None:
        out["lockExpiresAt"] = timestamp(record.lock_expires_at)
    out["retriesRemaining"] = record.retries_remaining
    out["variables"] = record.payload
    out["createdAt"] = timestamp(record.created_at)
    return out


def encoded_job(record: Job) -> bytes:
    """One job of a poll answer, encoded (a poll releases the jobs this refuses)."""
    return orjson.dumps(job(record))


def jobs_answer(encoded: list[bytes]) -> bytes:
    """The poll answer ``{"jobs": [...]}`` around jobs encoded by :func:`encoded_job`."""
    return b'{"jobs":[' + b",".join(encoded) + b"]}"


def step_execution(record: StepExecution) -> JsonObject:
    """Always the same nine keys; unset ``endedAt``/``failureReason`` are ``null`` (§3.7)."""
    return {
        "id": record.id,
        "instanceId": record.instance_id,
        "stepId": record.step_id,
        "stepType": record.step_type,
        "attemptNumber": record.attempt_number,
        "status": record.status.value,
        "startedAt": timestamp(record.started_at),
        "endedAt": _optional_timestamp(record.ended_at),
        "failureReason": record.failure_reason,
    }


def violation(item: Violation) -> JsonObject:
    out: JsonObject = {"code": item.code, "message": item.message}
    if item.step_id is not None:
        out["stepId"] = item.step_id
    return out


def definition_summary(record: DefinitionRecord, warnings: Iterable[Violation] = ()) -> JsonObject:
    out: JsonObject = {
        "id": record.id,
        "version": record.version,
        "name": record.name,
        "uploadedAt": timestamp(record.uploaded_at),
    }
    if listed := [violation(w) for w in warnings]:
        out["warnings"] = listed
    return out


def definition(record: DefinitionRecord) -> JsonObject:
    """The stored document in upload order, with the server's ``version`` right after ``id``."""
    out: JsonObject = {}
    for key, value in record.document.items():
        if key == "version":
            continue
        out[key] = value
        if key == "id":
            out["version"] = record.version
    out.setdefault("version", record.version)
    return out


def page(items: list[JsonObject], total: int) -> JsonObject:
    return {"items": items, "total": total}


# -- decoding ----------------------------------------------------------------------------------


# orjson reads integers past 64 bits as doubles without a word; a body with such a long run of
# digits goes through the stdlib parser, which keeps them exact so that the service can refuse
# them with their path (``engine/limits.py``).
_LONG_DIGITS = re.compile(rb"\d{19,}")


def _refuse_constant(name: str) -> object:
    raise ValueError(f"{name} is not a JSON number")


def _decode(raw: bytes, prefix: str) -> object:
    # Whitespace only is "no body", like Go's decoder reporting EOF.
    if not raw.strip():
        raise BadRequest(f"{prefix}EOF")
    try:
        if _LONG_DIGITS.search(raw) is None:
            return orjson.loads(raw)
        return json.loads(raw, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:  # orjson's error is a subclass
        reason = exc.msg.split(":", 1)[0]
        raise BadRequest(f"{prefix}{reason} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise BadRequest(f"{prefix}nesting is too deep") from None
    except ValueError as exc:  # NaN/Infinity, or an integer literal of thousands of digits
        raise BadRequest(f"{prefix}{str(exc)[:80]}") from None


def decode_definition(raw: bytes) -> JsonObject:
    """The upload body: a JSON object, handed to the engine for strict checking."""
    document = _decode(raw, "parse error: ")
    if not isinstance(document, dict):
        raise BadRequest("parse error: a workflow definition must be a JSON object")
    return document


class Body:
    """A lenient request body: unknown keys are ignored and ``null`` means absent (§2.2)."""

    def __init__(self, fields: Mapping[str, Any]) -> None:
        self._fields = fields

    @classmethod
    def required(cls, raw: bytes) -> Body:
        """A body that must be present and be a JSON object."""
        return cls._of(_decode(raw, "invalid request body: "))

    @classmethod
    def optional(cls, raw: bytes) -> Body:
        """A body that may be empty or ``null``; anything present must be a JSON object."""
        if not raw.strip():
            return cls({})
        return cls._of(_decode(raw, "invalid request body: "))

    @classmethod
    def _of(cls, value: object) -> Body:
        if value is None:
            return cls({})
        if not isinstance(value, dict):
            raise BadRequest("invalid request body: expected a JSON object")
        return cls(value)

    def has(self, name: str) -> bool:
        return self._fields.get(name) is not None

    def string(self, name: str) -> str | None:
        value = self._fields.get(name)
        if value is None or isinstance(value, str):
            return value
        raise BadRequest(f"{name} must be a string")

    def integer(self, name: str) -> int | None:
        """An integer; ``2.0`` is one too, as JSON Schema reads it (the OpenAPI document)."""
        value = self._fields.get(name)
        # bool is an int subclass in Python, never in JSON.
        if value is None or (isinstance(value, int) and not isinstance(value, bool)):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise BadRequest(f"{name} must be an integer")

    def boolean(self, name: str) -> bool | None:
        value = self._fields.get(name)
        if value is None or isinstance(value, bool):
            return value
        raise BadRequest(f"{name} must be a boolean")

    def json_object(self, name: str) -> JsonObject | None:
        value = self._fields.get(name)
        if value is None or isinstance(value, dict):
            return value
        raise BadRequest(f"{name} must be a JSON object")

    def objects(self, name: str) -> list[Body] | None:
        """An array of JSON objects, each as a :class:`Body`."""
        value = self._fields.get(name)
        if value is None:
            return None
        if isinstance(value, list) and all(isinstance(item, dict) for item in value):
            return [Body(item) for item in value]
        raise BadRequest(f"{name} must be an array of objects")

    def strings(self, name: str) -> list[str] | None:
        value = self._fields.get(name)
        if value is None:
            return None
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return value
        raise BadRequest(f"{name} must be an array of strings")


def variables_body(raw: bytes) -> JsonObject | None:
    """A signal body: the body itself is the variables map; empty or ``null`` is none."""
    if not raw.strip():
        return None
    value = _decode(raw, "invalid request body: ")
    if value is None or isinstance(value, dict):
        return value
    raise BadRequest("variables must be a JSON object")


# -- query and path parameters -------------------------------------------------------------

_INTEGER = re.compile(r"[+-]?[0-9]+")


def parse_int(text: str | None) -> int | None:
    """A decimal integer as Go's ``strconv.Atoi`` reads it, or ``None``."""
    if text is None or not _INTEGER.fullmatch(text):
        return None
    return int(text)


def pagination(query: Mapping[str, str]) -> tuple[int, int]:
    """``(page, page_size)`` as given; bad values read as 0, which the service turns into its
    defaults: nothing is rejected (§2.7)."""
    return parse_int(query.get("page")) or 0, parse_int(query.get("pageSize")) or 0
