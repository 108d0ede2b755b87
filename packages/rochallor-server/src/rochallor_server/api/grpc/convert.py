"""Protobuf messages ⇄ domain records and JSON (``spec/grpc-contract.md`` §4, §5).

This is the only module that imports both the generated messages (``_gen``) and the domain
types. Struct and Value are converted by hand rather than with betterproto2's
``Struct.from_dict``/``to_dict``: the hand-written functions are faster (see
``bench/bench_grpc_convert.py``) and apply the contract's number rule on the way in: a
Struct has no integer type, so an integral double (``100.0``) becomes the JSON integer
``100`` (§5.4).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final

from rochallor_server._gen.google.protobuf import ListValue, NullValue, Struct, Value
from rochallor_server._gen.workflow import v1 as pb
from rochallor_server.engine.model import (
    DefinitionRecord,
    ExecutionStatus,
    Instance,
    InstanceStatus,
    Job,
    JsonObject,
    StepExecution,
)
from rochallor_server.errors import BadRequest

# Doubles beyond 2**53 no longer hold every integer exactly: keep them as floats.
_MAX_EXACT_INTEGER: Final = 2**53

# -- Struct / Value ----------------------------------------------------------------------------


def value_from_json(value: object) -> Value:
    """One JSON value as a ``google.protobuf.Value``."""
    if isinstance(value, str):
        return Value(string_value=value)
    if isinstance(value, bool):  # before int: bool is an int subclass
        return Value(bool_value=value)
    if isinstance(value, (int, float)):
        return Value(number_value=float(value))
    if value is None:
        return Value(null_value=NullValue.NULL_VALUE)
    if isinstance(value, Mapping):
        return Value(struct_value=struct_from_json(value))
    if isinstance(value, (list, tuple)):
        return Value(list_value=ListValue(values=[value_from_json(item) for item in value]))
    raise TypeError(f"not a JSON value: {type(value).__name__}")


def struct_from_json(document: Mapping[str, Any]) -> Struct:
    """A JSON object as a ``google.protobuf.Struct``."""
    return Struct(fields={key: value_from_json(item) for key, item in document.items()})


def value_to_json(value: Value) -> Any:
    """A ``google.protobuf.Value`` as JSON; integral numbers become ``int``.

    A Value with no kind set is invalid protobuf; it is read as ``null``. Non-finite numbers
    cannot be stored as JSON and are rejected with ``BadRequest``.
    """
    if value.string_value is not None:
        return value.string_value
    number = value.number_value
    if number is not None:
        if isinstance(number, int):  # a Value built in-process may hold an int
            return number
        if number.is_integer():
            if -_MAX_EXACT_INTEGER <= number <= _MAX_EXACT_INTEGER:
                return int(number)
            return number
        if math.isfinite(number):
            return number
        raise BadRequest(f"number {number} cannot be represented in JSON")
    if value.bool_value is not None:
        return value.bool_value
    if value.struct_value is not None:
        return struct_to_json(value.struct_value)
    if value.list_value is not None:
        return [value_to_json(item) for item in value.list_value.values]
    return None


def struct_to_json(struct: Struct) -> JsonObject:
    """A ``google.protobuf.Struct`` as a JSON object, in the received entry order."""
    return {key: value_to_json(item) for key, item in struct.fields.items()}


def optional_struct_to_json(struct: Struct | None) -> JsonObject | None:
    """Absent Struct = no variables (``None``)."""
    return None if struct is None else struct_to_json(struct)


def _variables(document: object) -> Struct | None:
    # A variables document that is not a JSON object cannot be represented (§5.4).
    return struct_from_json(document) if isinstance(document, Mapping) else None


# -- enums -------------------------------------------------------------------------------------

_INSTANCE_STATUS: Final[Mapping[InstanceStatus, pb.InstanceStatus]] = {
    InstanceStatus.ACTIVE: pb.InstanceStatus.ACTIVE,
    InstanceStatus.WAITING: pb.InstanceStatus.WAITING,
    InstanceStatus.COMPLETED: pb.InstanceStatus.COMPLETED,
    InstanceStatus.FAILED: pb.InstanceStatus.FAILED,
    InstanceStatus.CANCELLED: pb.InstanceStatus.CANCELLED,
}
_INSTANCE_STATUS_NAME: Final[Mapping[int, str]] = {
    int(proto): domain.value for domain, proto in _INSTANCE_STATUS.items()
}
_EXECUTION_STATUS: Final[Mapping[ExecutionStatus, pb.StepExecutionStatus]] = {
    ExecutionStatus.RUNNING: pb.StepExecutionStatus.RUNNING,
    ExecutionStatus.COMPLETED: pb.StepExecutionStatus.COMPLETED,
    ExecutionStatus.FAILED: pb.StepExecutionStatus.FAILED,
    ExecutionStatus.SKIPPED: pb.StepExecutionStatus.SKIPPED,
}
_STEP_TYPE_NAMES: Final = (
    "SERVICE_TASK",
    "USER_TASK",
    "DECISION",
    "TRANSFORMATION",
    "WAIT",
    "PARALLEL_GATEWAY",
    "JOIN_GATEWAY",
    "END",
    "DECISION_TABLE",
)
_STEP_TYPE: Final[Mapping[str, pb.StepType]] = {n: pb.StepType[n] for n in _STEP_TYPE_NAMES}
_STEP_TYPE_NAME: Final[Mapping[int, str]] = {int(v): k for k, v in _STEP_TYPE.items()}
_BOUNDARY_TYPE_NAME: Final[Mapping[int, str]] = {int(pb.BoundaryEventType.TIMER): "TIMER"}


def _enum_name(names: Mapping[int, str], value: int) -> str:
    """The REST name of a proto enum value; 0 reads as ``UNSPECIFIED`` and fails validation."""
    name = names.get(int(value))
    if name is not None:
        return name
    return "UNSPECIFIED" if int(value) == 0 else f"UNKNOWN_{int(value)}"


def instance_status_filter(value: int) -> str | None:
    """``ListInstancesRequest.status``: UNSPECIFIED = every status."""
    if int(value) == 0:
        return None
    name = _INSTANCE_STATUS_NAME.get(int(value))
    if name is None:
        raise BadRequest(f"unknown instance status {int(value)}")
    return name


def step_type(name: str) -> pb.StepType:
    return _STEP_TYPE.get(name, pb.StepType.UNSPECIFIED)


# -- runtime records ---------------------------------------------------------------------------


def instance(record: Instance) -> pb.WorkflowInstance:
    return pb.WorkflowInstance(
        id=record.id,
        definition_id=record.definition_id,
        definition_version=record.definition_version,
        status=_INSTANCE_STATUS[record.status],
        current_step_ids=list(record.current_step_ids),
        variables=_variables(record.variables),
        started_at=record.started_at,
        completed_at=record.completed_at,
        failure_reason=record.failure_reason or "",
        business_key=record.business_key or "",
    )


def step_execution(record: StepExecution) -> pb.StepExecution:
    return pb.StepExecution(
        id=record.id,
        instance_id=record.instance_id,
        step_id=record.step_id,
        step_type=step_type(record.step_type),
        attempt_number=record.attempt_number,
        status=_EXECUTION_STATUS[record.status],
        started_at=record.started_at,
        ended_at=record.ended_at,
        failure_reason=record.failure_reason or "",
    )


def job(record: Job) -> pb.Job:
    return pb.Job(
        id=record.id,
        job_type=record.job_type,
        instance_id=record.instance_id,
        step_id=record.step_id,
        step_execution_id=record.step_execution_id,
        retries_remaining=record.retries_remaining,
        variables=_variables(record.payload),
        lock_expires_at=record.lock_expires_at,
    )


# -- definitions: message -> JSON document (upload) ------------------------------------------
#
# Proto3 scalars have no presence: an empty string, 0, false or an empty list is "absent" and
# left out of the document, so that a gRPC upload and the equivalent REST upload are the same
# document (same validation warnings, same "identical to the latest version" check).


def definition_to_json(message: pb.WorkflowDefinition) -> JsonObject:
    """The JSON definition (``workflow-format.md``) that the REST upload would carry."""
    out: JsonObject = {"id": message.id, "name": message.name}
    if message.description:
        out["description"] = message.description
    out["steps"] = [_step_to_json(step) for step in message.steps]
    if message.auto_start_next_workflow:
        out["autoStartNextWorkflow"] = True
    if message.next_workflow_id:
        out["nextWorkflowId"] = message.next_workflow_id
    if message.metadata is not None:
        out["metadata"] = struct_to_json(message.metadata)
    return out


def _step_to_json(step: pb.WorkflowStep) -> JsonObject:
    out: JsonObject = {
        "id": step.id,
        "name": step.name,
        "type": _enum_name(_STEP_TYPE_NAME, step.type),
    }
    if step.description:
        out["description"] = step.description
    if step.next_step:
        out["nextStep"] = step.next_step
    if step.parallel_next_steps:
        out["parallelNextSteps"] = list(step.parallel_next_steps)
    if step.join_step:
        out["joinStep"] = step.join_step
    if step.conditional_next_steps:
        # Entry order as received: the "written order" of DECISION evaluation (§5.4).
        out["conditionalNextSteps"] = dict(step.conditional_next_steps)
    if step.transformations:
        out["transformations"] = {k: value_to_json(v) for k, v in step.transformations.items()}
    if step.job_type:
        out["jobType"] = step.job_type
    if step.delegate_class:
        out["delegateClass"] = step.delegate_class
    if step.retry_count:
        out["retryCount"] = step.retry_count
    if step.boundary_events:
        out["boundaryEvents"] = [_boundary_to_json(b) for b in step.boundary_events]
    if step.hit_policy:
        out["hitPolicy"] = step.hit_policy
    if step.aggregation:
        out["aggregation"] = step.aggregation
    if step.inputs:
        out["inputs"] = [_input_to_json(i) for i in step.inputs]
    if step.outputs:
        out["outputs"] = [_output_to_json(o) for o in step.outputs]
    if step.rules:
        out["rules"] = [_rule_to_json(r) for r in step.rules]
    return out


def _boundary_to_json(event: pb.BoundaryEvent) -> JsonObject:
    out: JsonObject = {
        "type": _enum_name(_BOUNDARY_TYPE_NAME, event.type),
        "duration": event.duration,
    }
    if event.interrupting:
        out["interrupting"] = True
    out["targetStepId"] = event.target_step_id
    return out


def _input_to_json(column: pb.DecisionTableInput) -> JsonObject:
    out: JsonObject = {}
    if column.id:
        out["id"] = column.id
    if column.label:
        out["label"] = column.label
    out["expression"] = column.expression
    return out


def _output_to_json(column: pb.DecisionTableOutput) -> JsonObject:
    out: JsonObject = {"name": column.name}
    if column.label:
        out["label"] = column.label
    # Unset = no default; a set Value holding null_value = a default of null.
    if column.default_value is not None:
        out["defaultValue"] = value_to_json(column.default_value)
    return out


def _rule_to_json(rule: pb.DecisionTableRule) -> JsonObject:
    out: JsonObject = {}
    if rule.id:
        out["id"] = rule.id
    if rule.description:
        out["description"] = rule.description
    out["inputEntries"] = list(rule.input_entries)
    out["outputEntries"] = [value_to_json(v) for v in rule.output_entries]
    return out


# -- definitions: stored JSON document -> message (read) --------------------------------------


def definition(record: DefinitionRecord) -> pb.WorkflowDefinition:
    """The stored document as a message, with the server's version."""
    doc = record.document
    metadata = doc.get("metadata")
    return pb.WorkflowDefinition(
        id=record.id,
        version=record.version,
        name=_text(doc.get("name", record.name)),
        description=_text(doc.get("description")),
        auto_start_next_workflow=doc.get("autoStartNextWorkflow") is True,
        next_workflow_id=_text(doc.get("nextWorkflowId")),
        steps=[_step_from_json(step) for step in doc.get("steps") or ()],
        metadata=struct_from_json(metadata) if isinstance(metadata, Mapping) else None,
    )


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _step_from_json(step: Mapping[str, Any]) -> pb.WorkflowStep:
    transformations = step.get("transformations") or {}
    return pb.WorkflowStep(
        id=_text(step.get("id")),
        name=_text(step.get("name")),
        type=step_type(_text(step.get("type"))),
        description=_text(step.get("description")),
        next_step=_text(step.get("nextStep")),
        parallel_next_steps=[str(s) for s in step.get("parallelNextSteps") or ()],
        join_step=_text(step.get("joinStep")),
        conditional_next_steps={
            str(k): str(v) for k, v in (step.get("conditionalNextSteps") or {}).items()
        },
        transformations={str(k): value_from_json(v) for k, v in transformations.items()},
        job_type=_text(step.get("jobType")),
        delegate_class=_text(step.get("delegateClass")),
        retry_count=int(step.get("retryCount") or 0),
        boundary_events=[_boundary_from_json(b) for b in step.get("boundaryEvents") or ()],
        hit_policy=_text(step.get("hitPolicy")),
        aggregation=_text(step.get("aggregation")),
        inputs=[
            pb.DecisionTableInput(
                id=_text(c.get("id")),
                label=_text(c.get("label")),
                expression=_text(c.get("expression")),
            )
            for c in step.get("inputs") or ()
        ],
        outputs=[
            pb.DecisionTableOutput(
                name=_text(c.get("name")),
                label=_text(c.get("label")),
                default_value=value_from_json(c["defaultValue"]) if "defaultValue" in c else None,
            )
            for c in step.get("outputs") or ()
        ],
        rules=[
            pb.DecisionTableRule(
                id=_text(r.get("id")),
                description=_text(r.get("description")),
                input_entries=[str(e) for e in r.get("inputEntries") or ()],
                output_entries=[value_from_json(e) for e in r.get("outputEntries") or ()],
            )
            for r in step.get("rules") or ()
        ],
    )


def _boundary_from_json(event: Mapping[str, Any]) -> pb.BoundaryEvent:
    timer = event.get("type") == "TIMER"
    return pb.BoundaryEvent(
        type=pb.BoundaryEventType.TIMER if timer else pb.BoundaryEventType.UNSPECIFIED,
        duration=_text(event.get("duration")),
        interrupting=event.get("interrupting") is True,
        target_step_id=_text(event.get("targetStepId")),
    )
