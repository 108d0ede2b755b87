from __future__ import annotations

import json
import typing
from datetime import timedelta
from typing import Any

import pytest

from rochallor_validator import (
    ConditionalNextStep,
    DecisionNoBranchMatched,
    DefinitionInvalid,
    ExpressionEvaluationError,
    ServiceTaskStep,
    Step,
    StepType,
    TransformationError,
    TransformationStep,
    ValidationIssue,
    ValidatorError,
    WorkflowDefinition,
    check_definition,
    definition_to_json,
    evaluate_transformation,
    parse_definition,
    select_branch,
    validate_definition,
)


def base(**top: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": "TEST::base",
        "name": "Base",
        "steps": [
            {
                "id": "start",
                "name": "Start",
                "type": "SERVICE_TASK",
                "jobType": "w",
                "nextStep": "end",
            },
            {"id": "end", "name": "End", "type": "END"},
        ],
    }
    doc.update(top)
    return doc


def codes(doc: Any) -> list[str]:
    return [i.code for i in validate_definition(doc)]


def test_parse_accepts_str_bytes_and_mapping() -> None:
    doc = base()
    for data in (json.dumps(doc), json.dumps(doc).encode(), doc):
        definition = parse_definition(data)
        assert isinstance(definition, WorkflowDefinition)
        assert definition.id == "TEST::base"
        assert [s.type for s in definition.steps] == [StepType.SERVICE_TASK, StepType.END]
        assert definition.steps[0].type == "SERVICE_TASK"


def test_top_level_fields_snake_case() -> None:
    doc = base(
        autoStartNextWorkflow=True, nextWorkflowId="NEXT::wf", version=3, metadata={"k": [1]}
    )
    definition = parse_definition(doc)
    assert definition.auto_start_next_workflow is True
    assert definition.next_workflow_id == "NEXT::wf"
    assert definition.version == 3
    assert definition.metadata == {"k": [1]}
    assert definition_to_json(definition) == doc


def test_absent_optional_fields_are_omitted_on_output() -> None:
    out = definition_to_json(parse_definition(base()))
    assert out == base()
    assert "retryCount" not in out["steps"][0]


def test_boundary_event_duration_and_flags() -> None:
    doc = base()
    doc["steps"][0]["boundaryEvents"] = [
        {"type": "TIMER", "duration": "P1DT2H", "targetStepId": "end"}
    ]
    step = parse_definition(doc).steps[0]
    assert isinstance(step, ServiceTaskStep)
    assert step.boundary_events is not None
    event = step.boundary_events[0]
    assert event.is_interrupting is False
    assert event.interrupting is None
    assert event.parsed_duration.to_timedelta() == timedelta(days=1, hours=2)


def test_definition_invalid_lists_all_issues_and_summary() -> None:
    doc = base(name=" ")
    doc["steps"][0]["jobType"] = ""
    doc["steps"][0]["retryCount"] = -2
    with pytest.raises(DefinitionInvalid) as info:
        parse_definition(doc)
    exc = info.value
    assert isinstance(exc, ValidatorError)
    assert [i.code for i in exc.issues] == [
        "NAME_REQUIRED",
        "SERVICE_TASK_JOB_TYPE",
        "RETRY_COUNT_RANGE",
    ]
    assert str(exc).startswith("validation error: \n  ")
    assert str(exc).count("\n  ") == 3
    job = exc.issues[1]
    assert job == ValidationIssue(
        code="SERVICE_TASK_JOB_TYPE",
        path="$.steps[0].jobType",
        message=job.message,
        step_id="start",
    )


def test_parse_errors_are_summarised_as_parse_error() -> None:
    with pytest.raises(DefinitionInvalid) as info:
        parse_definition(base(extra=1))
    assert str(info.value).startswith("parse error: ")
    assert info.value.is_parse_error
    assert info.value.issues[0].path == "$.extra"


def test_malformed_json_is_a_parse_error_issue() -> None:
    assert codes("{not json") == ["PARSE_ERROR"]
    assert codes(b"\xff\xfe") == ["PARSE_ERROR"]
    assert codes("42") == ["PARSE_ERROR"]


def test_decoding_reports_every_problem_with_paths() -> None:
    doc = base(extra=1)
    doc["steps"][0]["retryCount"] = "3"
    doc["steps"][0]["nope"] = True
    doc["steps"][1]["type"] = "FINISH"
    issues = {(i.code, i.path) for i in validate_definition(doc)}
    assert issues == {
        ("UNKNOWN_FIELD", "$.extra"),
        ("INVALID_TYPE", "$.steps[0].retryCount"),
        ("UNKNOWN_FIELD", "$.steps[0].nope"),
        ("STEP_TYPE_VALID", "$.steps[1].type"),
    }


def test_null_optional_field_means_absent() -> None:
    doc = base(description=None)
    assert codes(doc) == []
    assert "description" not in definition_to_json(parse_definition(doc))


def test_inapplicable_field_is_warning_and_round_trips() -> None:
    doc = base()
    doc["steps"][1]["nextStep"] = "start"
    report = check_definition(doc)
    assert report.errors == []
    assert [(w.code, w.path) for w in report.warnings] == [
        ("INAPPLICABLE_FIELD", "$.steps[1].nextStep")
    ]
    assert report.definition is not None
    assert definition_to_json(report.definition) == doc


def test_inapplicable_field_with_wrong_type_is_rejected() -> None:
    doc = base()
    doc["steps"][1]["retryCount"] = 1.5
    assert codes(doc) == ["INVALID_TYPE"]


def test_graph_cycle_is_a_warning() -> None:
    doc = base()
    doc["steps"][0]["conditionalNextSteps"] = {"again == true": "start", "again == false": "end"}
    report = check_definition(doc)
    assert report.accepted
    assert [w.code for w in report.warnings] == ["GRAPH_CYCLE"]


def test_conditional_paths_follow_written_order() -> None:
    doc = base()
    doc["steps"][1:1] = [
        {"id": "d", "name": "D", "type": "DECISION",
         "conditionalNextSteps": {"a > 1": "end", "a +": "end", "a * 2": "end"}},
    ]  # fmt: skip
    doc["steps"][0]["nextStep"] = "d"
    issues = [(i.code, i.path) for i in validate_definition(doc)]
    assert issues == [
        ("DECISION_EXPR_SYNTAX", "$.steps[1].conditionalNextSteps[1].condition"),
        ("DECISION_EXPR_NON_BOOLEAN", "$.steps[1].conditionalNextSteps[2].condition"),
    ]
    step = parse_definition(base()).steps[0]
    assert step.id == "start"


def test_reachability_counts_boundary_targets_but_join_step_is_not_an_edge() -> None:
    doc = base()
    doc["steps"][0]["boundaryEvents"] = [
        {"type": "TIMER", "duration": "PT5M", "targetStepId": "late", "interrupting": True}
    ]
    doc["steps"].append({"id": "late", "name": "Late", "type": "END"})
    assert codes(doc) == []


def test_whole_validation_keeps_going_after_first_error() -> None:
    doc = base(id="bad id", name="")
    doc["steps"].append({"id": "orphan", "name": "", "type": "END"})
    assert codes(doc) == ["ID_FORMAT", "NAME_REQUIRED", "NAME_REQUIRED", "ALL_REACHABLE"]


def test_evaluate_transformation_in_order_and_storage_rule() -> None:
    step = TransformationStep(id="t", name="T", next_step="end", transformations=())
    doc = base()
    doc["steps"][1:1] = [{
        "id": "t", "name": "T", "type": "TRANSFORMATION", "nextStep": "end",
        "transformations": {"half": "${total / 2}", "double": "${half * 2}", "label": "plain ${x",
                            "list": ["${a}"], "n": 4},
    }]  # fmt: skip
    doc["steps"][0]["nextStep"] = "t"
    parsed = parse_definition(doc).steps[1]
    assert isinstance(parsed, TransformationStep)
    out = evaluate_transformation(parsed, {"total": 10})
    assert out == {"half": 5, "double": 10, "label": "plain ${x", "list": ["${a}"], "n": 4}
    assert type(out["half"]) is int
    assert evaluate_transformation(step, {}) == {}


def test_evaluate_transformation_error_reason() -> None:
    doc = base()
    doc["steps"][1:1] = [{"id": "t", "name": "T", "type": "TRANSFORMATION", "nextStep": "end",
                          "transformations": {"risky": "${score > 1}"}}]  # fmt: skip
    doc["steps"][0]["nextStep"] = "t"
    step = parse_definition(doc).steps[1]
    assert isinstance(step, TransformationStep)
    with pytest.raises(TransformationError) as info:
        evaluate_transformation(step, {})
    assert str(info.value) == (
        'transformation "risky": expression eval: '
        'expression "score > 1": undefined variable "score"'
    )


def test_select_branch_order_and_failures() -> None:
    definition = parse_definition(base())
    assert definition.step("end") is not None
    assert definition.step("ghost") is None
    branches = (
        ConditionalNextStep(condition="#highRisk == true", target="end-rejected"),
        ConditionalNextStep(condition="#creditScore >= 650", target="auto-approve"),
    )
    assert select_branch(branches, {"highRisk": True, "creditScore": 700}) == "end-rejected"
    assert select_branch(branches, {"highRisk": False, "creditScore": 700}) == "auto-approve"
    with pytest.raises(DecisionNoBranchMatched, match="DecisionNoBranchMatched"):
        select_branch(branches, {"highRisk": False, "creditScore": 1})
    with pytest.raises(ExpressionEvaluationError):
        select_branch(branches, {"creditScore": 1})


def test_expression_syntax_errors_give_the_offset_in_the_written_text() -> None:
    doc = base()
    doc["steps"][1:1] = [
        {"id": "d", "name": "D", "type": "DECISION",
         "conditionalNextSteps": {"a > 1": "t", "a && && b": "t"}},
        {"id": "t", "name": "T", "type": "TRANSFORMATION", "nextStep": "end",
         "transformations": {"x": "${a +}", "y": "${now()}"}},
    ]  # fmt: skip
    doc["steps"][0]["nextStep"] = "d"
    found = {i.code: i for i in validate_definition(doc)}
    condition = found["DECISION_EXPR_SYNTAX"]
    assert condition.position == 5  # the second "&&" of "a && && b"
    value = found["TRANSFORMATION_EXPR_SYNTAX"]
    assert value.position == 5  # the end of "${a +", counted from the "$"
    assert all(i.position is None for i in validate_definition(base(name="")))


def test_step_union_has_one_class_per_step_type() -> None:
    # Code that matches exhaustively over ``Step`` (the server's state machine) then handles
    # every step type a definition can hold.
    classes = typing.get_args(Step)
    assert sorted(c.type for c in classes) == sorted(StepType)
    for step_type in StepType:
        document = {
            "id": "T::wf",
            "name": "W",
            "steps": [{"id": "s", "name": "s", "type": step_type}],
        }
        decoded = check_definition(document).definition
        assert decoded is not None
        [step] = decoded.steps
        assert type(step) in classes and step.type is step_type
