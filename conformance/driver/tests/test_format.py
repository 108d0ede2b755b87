"""Pure parts of the driver: scenario format, renaming, comparisons, reports."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import CONFORMANCE

from rochallor_conformance.checks import check_audit, check_instance, check_invariants, json_equal
from rochallor_conformance.cli import collect, print_table, write_junit
from rochallor_conformance.engine import EngineError
from rochallor_conformance.errors import ScenarioFormatError
from rochallor_conformance.runner import Result, error_matches
from rochallor_conformance.scenario import build_scenario, worker_script

FIXTURES = CONFORMANCE / "definitions" / "valid"


def test_the_whole_suite_loads_with_unique_names() -> None:
    scenarios = collect(CONFORMANCE, "r1")
    groups = {s.group for s in scenarios}
    assert groups == {"definitions", "expressions", "decision-tables", "scenarios"}
    assert len({s.name for s in scenarios}) == len(scenarios)
    script = worker_script(scenarios)
    # every job type of every scenario is renamed for the run
    assert script["jobTypes"] and all(t.endswith("-r1") for t in script["jobTypes"])


def test_every_step_type_is_covered_by_a_runtime_scenario() -> None:
    types = set()
    for scenario in collect(CONFORMANCE, "r1"):
        if scenario.group != "scenarios":
            continue
        for definition in scenario.definitions:
            types |= {step["type"] for step in definition["steps"]}
    assert types == {
        "SERVICE_TASK",
        "USER_TASK",
        "WAIT",
        "DECISION",
        "DECISION_TABLE",
        "TRANSFORMATION",
        "PARALLEL_GATEWAY",
        "JOIN_GATEWAY",
        "END",
    }


def test_names_are_renamed_everywhere() -> None:
    raw = {
        "definitions": [
            {
                "id": "a",
                "name": "A",
                "autoStartNextWorkflow": True,
                "nextWorkflowId": "b",
                "steps": [{"id": "t", "name": "T", "type": "SERVICE_TASK", "jobType": "work"}],
            }
        ],
        "workers": {"work": [{"action": "complete", "variables": {"x": 1}}]},
        "steps": [
            {"do": "start", "definitionId": "a", "businessKey": "BK"},
            {
                "do": "expect",
                "find": {"definitionId": "b", "businessKey": "BK"},
                "businessKey": "BK",
            },
            {"do": "claimJob", "jobType": "other"},
        ],
    }
    s = build_scenario(raw, "demo", "r9", FIXTURES, source="demo.json")
    assert s.definitions[0]["id"] == "a--demo-r9"
    assert s.definitions[0]["nextWorkflowId"] == "b--demo-r9"
    assert s.definitions[0]["steps"][0]["jobType"] == "work--demo-r9"
    assert list(s.workers) == ["work--demo-r9"]
    assert s.actions[0]["definitionId"] == "a--demo-r9"
    assert s.actions[0]["businessKey"] == "BK--demo-r9"
    assert s.actions[1]["find"] == {"definitionId": "b--demo-r9", "businessKey": "BK--demo-r9"}
    assert s.actions[1]["businessKey"] == "BK--demo-r9"
    assert s.actions[2]["jobType"] == "other--demo-r9"
    assert raw["definitions"][0]["id"] == "a"  # the file's document is left alone


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"steps": []}, "'steps' must be a non-empty array"),
        ({"steps": [{"do": "teleport"}]}, "unknown action 'teleport'"),
        ({"steps": [{"do": "expect", "colour": "red"}]}, "unknown keys ['colour']"),
        ({"steps": [{"do": "sleep", "seconds": 1}], "extra": 1}, "unknown top-level keys"),
        (
            {"steps": [{"do": "sleep", "seconds": 1}], "workers": {"t": [{"action": "explode"}]}},
            "action must be one of",
        ),
        (
            {"steps": [{"do": "upload", "fixture": "no-such-fixture"}]},
            "no definition fixture 'no-such-fixture'",
        ),
    ],
)
def test_format_errors_name_the_problem(raw: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ScenarioFormatError) as info:
        build_scenario(raw, "bad", "r1", FIXTURES, source="bad.json")
    assert message in str(info.value)
    assert str(info.value).startswith("bad.json: ")


def test_json_equal() -> None:
    assert json_equal(1, 1.0)
    assert not json_equal(1, 1.0, exact=True)
    assert not json_equal(True, 1)
    assert not json_equal(0, False)
    assert json_equal({"a": [1, {"b": None}]}, {"a": [1.0, {"b": None}]})
    assert not json_equal({"a": 1}, {"a": 1, "b": 2})
    assert not json_equal("1", 1)


def _instance(**fields: object) -> dict[str, object]:
    base: dict[str, object] = {
        "id": "i",
        "status": "COMPLETED",
        "currentStepIds": [],
        "variables": {"x": 1, "nested": {"a": 1}},
        "completedAt": "2026-01-01T00:00:00Z",
        "definitionId": "d",
        "definitionVersion": 1,
        "startedAt": "2026-01-01T00:00:00Z",
    }
    base.update(fields)
    return base


def _execution(step: str, step_type: str, status: str = "COMPLETED") -> dict[str, object]:
    return {
        "id": f"x-{step}",
        "instanceId": "i",
        "stepId": step,
        "stepType": step_type,
        "attemptNumber": 1,
        "status": status,
        "startedAt": "2026-01-01T00:00:00Z",
        "endedAt": None if status == "RUNNING" else "2026-01-01T00:00:01Z",
        "failureReason": None,
    }


HISTORY = [_execution("a", "SERVICE_TASK"), _execution("end", "END")]


def test_check_instance_reports_every_difference() -> None:
    assert (
        check_instance(
            _instance(), HISTORY, {"status": "COMPLETED", "history": ["a", "end:COMPLETED"]}
        )
        == []
    )
    problems = check_instance(
        _instance(),
        HISTORY,
        {
            "status": "FAILED",
            "variables": {"x": 2, "y": 1},
            "absentVariables": ["nested"],
            "history": ["a:FAILED"],
            "historyCount": {"a": 2},
            "failureReason": "boom",
        },
    )
    assert len(problems) == 7, problems
    assert "status is 'COMPLETED', expected 'FAILED'" in problems


def test_invariants_of_terminal_instances() -> None:
    types = {"a": "SERVICE_TASK", "end": "END"}
    assert check_invariants(_instance(), HISTORY, types) == []
    running = [_execution("a", "SERVICE_TASK", "RUNNING")]
    problems = check_invariants(
        _instance(status="FAILED", currentStepIds=["a"]), running, {"a": "USER_TASK"}
    )
    assert any(p.startswith("I7") for p in problems)
    assert any(p.startswith("I9") for p in problems)
    assert any("stepType" in p for p in problems)
    assert check_invariants(_instance(status="ACTIVE"), running, types) == []
    # attempt numbers count earlier executions of the same step; keys are all present
    again = [*HISTORY[:1], {**HISTORY[0], "id": "x-a2", "attemptNumber": 1}]
    assert check_invariants(_instance(), again, types) == ["execution 2 of 'a' has attemptNumber 1"]
    partial = {k: v for k, v in HISTORY[0].items() if k != "endedAt"}
    assert check_invariants(_instance(), [partial], types) == [
        "history item of 'a' lacks ['endedAt']",
        "COMPLETED execution of 'a' has no endedAt",
    ]


def test_error_matching() -> None:
    rest = EngineError(
        "bad_request", 400, "validation error", {"details": [{"code": "REF_RESOLVES"}]}
    )
    assert error_matches(rest, "bad_request")
    assert error_matches(rest, "REF_RESOLVES")
    assert not error_matches(rest, "END_REACHABLE")
    assert not error_matches(rest, "not_found")
    assert error_matches(EngineError("bad_request", 400, "parse error: x"), "UNKNOWN_FIELD")
    nul = EngineError("bad_request", 400, "steps[0].jobType must not contain NUL characters")
    assert error_matches(nul, "NUL_CHARACTER")
    assert not error_matches(nul, "REF_RESOLVES")
    assert not error_matches(EngineError("other", 500, "boom"), "REF_RESOLVES")
    grpc = EngineError("bad_request", "INVALID_ARGUMENT", "validation error", codes=False)
    assert error_matches(grpc, "REF_RESOLVES")


def test_table_and_junit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = [
        Result("one", "scenarios", True, 0.5),
        Result("two", "expressions", False, 1.25, 'step 2 (expect): status <"x">'),
    ]
    print_table(results)
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "1 passed, 1 failed"
    assert any("two" in line and "FAIL" in line for line in out)
    path = tmp_path / "report.xml"
    write_junit(path, results, 2.0)
    suite = ET.parse(path).getroot()
    assert (suite.get("tests"), suite.get("failures")) == ("2", "1")
    failure = suite.find("testcase[@name='two']/failure")
    assert failure is not None and 'status <"x">' in (failure.text or "")


def test_vector_files_are_valid_json_with_ids() -> None:
    vectors = json.loads((CONFORMANCE / "vectors" / "expressions.json").read_text())["vectors"]
    ids = [v["id"] for v in vectors]
    assert len(ids) == len(set(ids))
    tables = json.loads((CONFORMANCE / "vectors" / "decision-tables.json").read_text())["tables"]
    assert {t["table"].get("hitPolicy") for t in tables} >= {
        "U",
        "A",
        "F",
        "R",
        "C",
        "C+",
        "C#",
        "C<",
        "C>",
    }


def test_list_and_selection(capsys: pytest.CaptureFixture[str]) -> None:
    from rochallor_conformance.cli import main

    code = main(
        ["--engine-url", "http://unused", "--list", "--only", "timer-*", "--skip", "*-user-task"]
    )
    assert code == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert names and all(n.startswith("timer-") and not n.endswith("-user-task") for n in names)
    assert "timer-interrupting-service-task" in names


def test_no_selection_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    from rochallor_conformance.cli import main

    assert main(["--engine-url", "http://unused", "--only", "no-such-scenario"]) == 2
    assert "no scenario selected" in capsys.readouterr().err


def test_audit_expectations() -> None:
    log = [{"kind": k} for k in ("instance-started", "job-retried", "timer-fired", "job-completed")]
    assert check_audit(log, {"audit": ["instance-started", "job-completed"]}) == []
    assert check_audit(log, {"auditCount": {"job-retried": 1, "job-failed": 0}}) == []
    out_of_order = check_audit(log, {"audit": ["job-completed", "job-retried"]})
    assert len(out_of_order) == 1 and "in this order" in out_of_order[0]
    assert check_audit(log, {"auditCount": {"job-retried": 2}}) == [
        "audit log has 1 'job-retried' entries, expected 2"
    ]
