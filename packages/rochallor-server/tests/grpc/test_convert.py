"""Conversion rules of ``grpc-contract.md`` §5.4, without a server."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import pytest

from rochallor_server._gen.google.protobuf import ListValue, Struct, Value
from rochallor_server._gen.workflow import v1 as pb
from rochallor_server.api.grpc import convert
from rochallor_server.engine.model import DefinitionRecord
from rochallor_server.errors import BadRequest

from .conftest import definition_message, fixture_definition

NOW = dt.datetime(2026, 11, 2, 10, 30, 15, 123456, tzinfo=dt.UTC)

VARIABLES: dict[str, Any] = {
    "count": 100,
    "negative": -3,
    "zero": 0,
    "ratio": 0.25,
    "name": "order-1",
    "unicode": "ünïcødé ✓",
    "flag": True,
    "off": False,
    "nothing": None,
    "nested": {"a": 1, "b": [1, 2.5, "x", None, {"deep": True}], "empty": {}},
    "list": [],
}


def wire(struct: Struct) -> Struct:
    """A Struct after an encode/decode round trip (numbers come back as floats)."""
    return Struct.parse(bytes(struct))


def test_struct_round_trip_keeps_every_json_type_and_integral_numbers_become_ints() -> None:
    decoded = convert.struct_to_json(wire(convert.struct_from_json(VARIABLES)))
    assert decoded == VARIABLES
    assert type(decoded["count"]) is int
    assert type(decoded["nested"]["a"]) is int
    assert type(decoded["nested"]["b"][1]) is float
    assert type(decoded["ratio"]) is float


def test_struct_matches_betterproto2_from_dict_on_the_wire() -> None:
    assert bytes(convert.struct_from_json(VARIABLES)) == bytes(Struct.from_dict(VARIABLES))


def test_struct_keeps_received_key_order() -> None:
    keys = [f"k{i}" for i in (5, 1, 9, 0, 3)]
    decoded = convert.struct_to_json(wire(convert.struct_from_json(dict.fromkeys(keys, 1))))
    assert list(decoded) == keys


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        (100.0, 100),
        (-0.0, 0),
        (2.0**53, 2**53),
        (2.0**60, 2.0**60),  # beyond exact doubles: stays a float
        (1e300, 1e300),
        (0.1, 0.1),
    ],
)
def test_numbers(number: float, expected: float) -> None:
    result = convert.value_to_json(Value(number_value=number))
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf])
def test_non_finite_numbers_are_bad_requests(number: float) -> None:
    with pytest.raises(BadRequest, match="cannot be represented in JSON"):
        convert.value_to_json(Value(number_value=number))


def test_value_without_kind_reads_as_null() -> None:
    assert convert.value_to_json(Value()) is None
    assert convert.value_to_json(Value(list_value=ListValue())) == []


def test_absent_struct_is_no_variables() -> None:
    assert convert.optional_struct_to_json(None) is None
    assert convert.optional_struct_to_json(Struct()) == {}


def proto3_view(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` as it survives proto3: explicit ``false``/``0`` scalars have no presence."""
    out = {k: v for k, v in document.items() if k != "version" and v is not False}
    steps = []
    for step in document["steps"]:
        step = {k: v for k, v in step.items() if not (k == "retryCount" and v == 0)}
        if "boundaryEvents" in step:
            step["boundaryEvents"] = [
                {k: v for k, v in b.items() if v is not False} for b in step["boundaryEvents"]
            ]
        steps.append(step)
    out["steps"] = steps
    return out


def record_of(document: dict[str, Any], version: int = 3) -> DefinitionRecord:
    return DefinitionRecord(
        id=document["id"],
        version=version,
        name=document["name"],
        uploaded_at=NOW,
        document=document,
    )


@pytest.mark.parametrize(
    "name",
    [
        "order-fulfilment",
        "decision-tables",
        "loan-application",
        "inline-routing-and-cycle",
        "shop-order-check",
        "loan-disbursement",
    ],
)
def test_definition_round_trips_through_the_message_and_the_wire(name: str) -> None:
    document = fixture_definition(name)
    message = pb.WorkflowDefinition.parse(bytes(convert.definition(record_of(document))))
    assert message.version == 3
    back = convert.definition_to_json(message)
    assert back == proto3_view(document)
    # The independent ProtoJSON path yields the same message.
    assert convert.definition_to_json(definition_message(document)) == back


def test_decision_table_fields() -> None:
    document = fixture_definition("decision-tables")
    message = convert.definition(record_of(document))
    step = message.steps[1]
    assert step.type == pb.StepType.DECISION_TABLE
    assert step.hit_policy == "F"
    assert step.inputs[0].expression == "customer.tier"
    assert step.outputs[0].default_value == Value(number_value=0.0)
    assert message.steps[0].outputs[0].default_value is None
    assert step.rules[0].output_entries[1] == Value(string_value="blocked-country")


def test_null_default_value_is_kept_apart_from_no_default() -> None:
    out = pb.DecisionTableOutput(name="x", default_value=Value(null_value=0))  # type: ignore[arg-type]
    parsed = pb.DecisionTableOutput.parse(bytes(out))
    assert convert._output_to_json(parsed) == {"name": "x", "defaultValue": None}
    assert convert._output_to_json(pb.DecisionTableOutput(name="x")) == {"name": "x"}


def test_map_entry_order_is_the_received_order() -> None:
    conditions = {f"x == {i}": f"s{i}" for i in (3, 1, 2, 0)}
    step = pb.WorkflowStep(
        id="d",
        name="d",
        type=pb.StepType.DECISION,
        conditional_next_steps=conditions,
        transformations={k: Value(string_value=k) for k in ("z", "a", "m")},
    )
    parsed = convert._step_to_json(pb.WorkflowStep.parse(bytes(step)))
    assert list(parsed["conditionalNextSteps"].items()) == list(conditions.items())
    assert list(parsed["transformations"]) == ["z", "a", "m"]


def test_unspecified_types_become_unspecified_names() -> None:
    step = pb.WorkflowStep(
        id="s",
        name="s",
        boundary_events=[pb.BoundaryEvent(duration="PT1S", target_step_id="t")],
    )
    parsed = convert._step_to_json(step)
    assert parsed["type"] == "UNSPECIFIED"
    assert parsed["boundaryEvents"] == [
        {"type": "UNSPECIFIED", "duration": "PT1S", "targetStepId": "t"}
    ]


def test_defaults_are_left_out_of_the_uploaded_document() -> None:
    message = pb.WorkflowDefinition(
        id="A::b", name="b", steps=[pb.WorkflowStep(id="e", name="e", type=pb.StepType.END)]
    )
    assert convert.definition_to_json(message) == {
        "id": "A::b",
        "name": "b",
        "steps": [{"id": "e", "name": "e", "type": "END"}],
    }


def test_timestamps_are_utc_aware() -> None:
    message = pb.Job.parse(bytes(pb.Job(id="j", lock_expires_at=NOW)))
    assert message.lock_expires_at == NOW
    assert message.lock_expires_at is not None
    assert message.lock_expires_at.utcoffset() == dt.timedelta(0)
