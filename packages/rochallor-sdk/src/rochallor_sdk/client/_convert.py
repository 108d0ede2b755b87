"""JSON / protobuf conversions at the SDK edge (the only module that knows both shapes)."""

from __future__ import annotations

import copy
import datetime
from collections.abc import Mapping
from typing import Any

from rochallor_sdk._gen.google.protobuf import Struct
from rochallor_sdk._gen.workflow import v1 as pb
from rochallor_sdk.client import _base

# Floats with an integral value above 2**53 are not exact anyway; leave them as floats.
_MAX_EXACT = 2**53


def integral_floats_to_int(value: Any) -> Any:
    """``1.0`` → ``1`` recursively: a Struct carries every number as a double (stack.md §1)."""
    if isinstance(value, float):
        if value.is_integer() and abs(value) <= _MAX_EXACT:
            return int(value)
        return value
    if isinstance(value, dict):
        return {k: integral_floats_to_int(v) for k, v in value.items()}
    if isinstance(value, list):
        return [integral_floats_to_int(v) for v in value]
    return value


def struct_to_dict(struct: Struct | None) -> dict[str, Any]:
    if struct is None:
        return {}
    result: dict[str, Any] = integral_floats_to_int(struct.to_dict())
    return result


def dict_to_struct(variables: Mapping[str, Any] | None) -> Struct | None:
    if variables is None:
        return None
    return Struct.from_dict(dict(variables))


def parse_timestamp(value: object) -> datetime.datetime | None:
    """RFC 3339 → UTC-aware datetime. A naive value (against the contract) is read as UTC."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"timestamp must be a string, got {value!r}")
    parsed = datetime.datetime.fromisoformat(value)
    if parsed.utcoffset() is None:
        parsed = parsed.replace(tzinfo=datetime.UTC)
    return parsed.astimezone(datetime.UTC)


def aware(value: datetime.datetime | None) -> datetime.datetime | None:
    if value is None:
        return None
    if value.utcoffset() is None:
        return value.replace(tzinfo=datetime.UTC)
    return value.astimezone(datetime.UTC)


def job_from_json(data: Mapping[str, Any]) -> _base.Job:
    variables = data.get("variables")
    return _base.Job(
        id=str(data["id"]),
        job_type=str(data.get("jobType") or ""),
        instance_id=str(data.get("instanceId") or ""),
        step_id=str(data.get("stepId") or ""),
        step_execution_id=str(data.get("stepExecutionId") or ""),
        retries_remaining=int(data.get("retriesRemaining") or 0),
        variables=dict(variables) if isinstance(variables, Mapping) else {},
        lock_expires_at=parse_timestamp(data.get("lockExpiresAt")),
    )


def job_from_proto(message: pb.Job) -> _base.Job:
    return _base.Job(
        id=message.id,
        job_type=message.job_type,
        instance_id=message.instance_id,
        step_id=message.step_id,
        step_execution_id=message.step_execution_id,
        retries_remaining=message.retries_remaining,
        variables=struct_to_dict(message.variables),
        lock_expires_at=aware(message.lock_expires_at),
    )


# --- admin resources over gRPC -------------------------------------------------------------

_STEP_TYPE = "STEP_TYPE_"
_BOUNDARY_TYPE = "BOUNDARY_EVENT_TYPE_"
_INSTANCE_STATUS = "INSTANCE_STATUS_"
_EXECUTION_STATUS = "STEP_EXECUTION_STATUS_"


def _strip(value: Any, prefix: str) -> Any:
    if isinstance(value, str) and value.startswith(prefix):
        return value[len(prefix) :]
    return value


def _prefix(value: Any, prefix: str) -> Any:
    if isinstance(value, str) and value and not value.startswith(prefix):
        return prefix + value
    return value


def definition_to_proto(definition: Mapping[str, Any]) -> pb.WorkflowDefinition:
    """REST-shaped definition dict → message (enum names gain their proto prefix)."""
    data = copy.deepcopy(dict(definition))
    data.pop("version", None)  # assigned by the engine
    for step in data.get("steps") or []:
        if isinstance(step, dict):
            step["type"] = _prefix(step.get("type"), _STEP_TYPE)
            for event in step.get("boundaryEvents") or []:
                if isinstance(event, dict):
                    event["type"] = _prefix(event.get("type"), _BOUNDARY_TYPE)
    return pb.WorkflowDefinition.from_dict(data)


def definition_to_json(message: pb.WorkflowDefinition) -> dict[str, Any]:
    data: dict[str, Any] = integral_floats_to_int(message.to_dict())
    for step in data.get("steps", []):
        step["type"] = _strip(step.get("type"), _STEP_TYPE)
        for event in step.get("boundaryEvents", []):
            event["type"] = _strip(event.get("type"), _BOUNDARY_TYPE)
            event.setdefault("interrupting", False)
            event.setdefault("targetStepId", "")
    data.setdefault("version", message.version)
    return data


def instance_to_json(message: pb.WorkflowInstance | None) -> dict[str, Any]:
    if message is None:
        return {}
    data: dict[str, Any] = message.to_dict()
    data["status"] = _strip(data.get("status", ""), _INSTANCE_STATUS)
    data["variables"] = struct_to_dict(message.variables)
    data.setdefault("currentStepIds", [])
    data.setdefault("definitionVersion", message.definition_version)
    return data


def execution_to_json(message: pb.StepExecution) -> dict[str, Any]:
    data: dict[str, Any] = message.to_dict()
    return {
        "id": message.id,
        "instanceId": message.instance_id,
        "stepId": message.step_id,
        "stepType": _strip(data.get("stepType", ""), _STEP_TYPE),
        "attemptNumber": message.attempt_number,
        "status": _strip(data.get("status", ""), _EXECUTION_STATUS),
        "startedAt": data.get("startedAt"),
        "endedAt": data.get("endedAt"),
        "failureReason": message.failure_reason or None,
    }


def instance_status_to_proto(status: str | None) -> pb.InstanceStatus:
    if not status:
        return pb.InstanceStatus.UNSPECIFIED
    name = _strip(status, _INSTANCE_STATUS)
    try:
        return pb.InstanceStatus[name]
    except KeyError:
        raise ValueError(f"unknown instance status {status!r}") from None
