"""Run every conformance fixture (conformance/definitions) through the validator."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rochallor_validator import definition_to_json, parse_definition, validate_definition

DEFINITIONS = Path(__file__).parents[4] / "conformance" / "definitions"
VALID = sorted((DEFINITIONS / "valid").glob("*.json"))
INVALID = sorted((DEFINITIONS / "invalid").glob("*.json"))

#: Every error code of workflow-format.md section 5 / decision-table.md section 4, plus the
#: decoding codes of this package. Each must have at least one invalid fixture.
ERROR_CODES = {
    "PARSE_ERROR", "UNKNOWN_FIELD", "INVALID_TYPE",
    "ID_FORMAT", "NAME_REQUIRED", "STEPS_NONEMPTY", "NEXT_WORKFLOW_CONSISTENCY",
    "STEP_ID_REQUIRED", "STEP_ID_UNIQUE", "STEP_TYPE_VALID", "SERVICE_TASK_JOB_TYPE",
    "RETRY_COUNT_RANGE", "REF_RESOLVES", "TRANSFORMATION_HAS_NEXT", "TRANSFORMATION_HAS_ENTRIES",
    "WAIT_HAS_NEXT", "JOIN_HAS_NEXT", "DECISION_HAS_BRANCHES", "PARALLEL_MIN_BRANCHES",
    "PARALLEL_DISTINCT_BRANCHES", "PARALLEL_HAS_JOIN", "JOIN_OWNED_ONCE",
    "BOUNDARY_PARENT_SUPPORTS", "BOUNDARY_TYPE", "BOUNDARY_DURATION", "BOUNDARY_TARGET_RESOLVES",
    "BOUNDARY_SELF_TARGET", "DECISION_EXPR_SYNTAX", "DECISION_EXPR_NON_BOOLEAN",
    "TRANSFORMATION_EXPR_SYNTAX", "ALL_REACHABLE", "END_REACHABLE", "NO_NESTED_PARALLEL",
    "PARALLEL_BRANCH_REACHES_JOIN",
    "DECISION_TABLE_HAS_NEXT", "DECISION_TABLE_HIT_POLICY", "DECISION_TABLE_AGGREGATION",
    "DECISION_TABLE_AGGREGATION_SINGLE_OUTPUT", "DECISION_TABLE_HAS_INPUTS",
    "DECISION_TABLE_HAS_OUTPUTS", "DECISION_TABLE_HAS_RULES", "DECISION_TABLE_RULE_SHAPE",
    "DECISION_TABLE_ENTRY_SYNTAX", "DECISION_TABLE_ENTRY_RANGE", "DECISION_TABLE_EXPR_SYNTAX",
    "DECISION_TABLE_AGGREGATION_VALUES",
    # limits (docs/validator.md, "Limits")
    "BOUNDARY_DURATION_RANGE", "VERSION_RANGE", "NUMBER_RANGE", "NESTING_DEPTH", "STRING_LENGTH",
    "EXPR_LIMIT", "NUL_CHARACTER",
}  # fmt: skip


def expected_code(path: Path) -> str:
    return path.name.split("--", 1)[0]


def test_fixtures_exist() -> None:
    assert len(VALID) >= 5
    assert {"loan-application.json", "loan-disbursement.json", "order-fulfilment.json"} <= {
        p.name for p in VALID
    }


def test_every_rule_has_an_invalid_fixture() -> None:
    assert {expected_code(p) for p in INVALID} == ERROR_CODES


@pytest.mark.parametrize("path", VALID, ids=[p.name for p in VALID])
def test_valid_fixture_is_accepted_and_round_trips(path: Path) -> None:
    assert validate_definition(path.read_bytes()) == []
    raw = json.loads(path.read_bytes())
    out = definition_to_json(parse_definition(raw))
    assert out == raw
    # ordered maps keep the written order (dict equality alone ignores order)
    for out_step, raw_step in zip(out["steps"], raw["steps"], strict=True):
        for key in ("conditionalNextSteps", "transformations"):
            if key in raw_step:
                assert list(out_step[key]) == list(raw_step[key])


@pytest.mark.parametrize("path", INVALID, ids=[p.name for p in INVALID])
def test_invalid_fixture_produces_its_code(path: Path) -> None:
    code = expected_code(path)
    issues = validate_definition(path.read_bytes())
    assert code in {i.code for i in issues}, [(i.code, i.path) for i in issues]
    for issue in issues:
        assert issue.path.startswith("$")
        assert issue.message
