"""The expression and decision-table vectors of the conformance suite (conformance/vectors),
checked against the library. The same files are run through a live engine by the conformance
driver (``nox -s conformance``)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from rochallor_validator import (
    DecisionTableError,
    DecisionTableStep,
    ExpressionEvaluationError,
    ExpressionSyntaxError,
    NonBooleanResult,
    compile_decision_table,
    compile_expression,
    compile_value,
    parse_definition,
    validate_definition,
)

VECTORS = Path(__file__).parents[4] / "conformance" / "vectors"
EXPRESSIONS = json.loads((VECTORS / "expressions.json").read_text(encoding="utf-8"))["vectors"]
TABLES = json.loads((VECTORS / "decision-tables.json").read_text(encoding="utf-8"))["tables"]


def identical(a: Any, b: Any) -> bool:
    """JSON equality that also tells ``2`` from ``2.0`` and ``true`` from ``1``."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(identical(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(identical(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _definition(vector: dict[str, Any]) -> dict[str, Any]:
    if vector.get("context", "value") == "value":
        steps: list[dict[str, Any]] = [
            {
                "id": "evaluate",
                "name": "Evaluate",
                "type": "TRANSFORMATION",
                "transformations": {"result": "${" + vector["expression"] + "}"},
                "nextStep": "end",
            },
            {"id": "end", "name": "End", "type": "END"},
        ]
    else:
        steps = [
            {
                "id": "evaluate",
                "name": "Evaluate",
                "type": "DECISION",
                "conditionalNextSteps": {vector["expression"]: "end", "true": "end"},
            },
            {"id": "end", "name": "End", "type": "END"},
        ]
    return {"id": "vector", "name": "Vector", "steps": steps}


@pytest.mark.parametrize("vector", EXPRESSIONS, ids=[v["id"] for v in EXPRESSIONS])
def test_expression_vector(vector: dict[str, Any]) -> None:
    boolean = vector.get("context", "value") == "boolean"
    codes = [issue.code for issue in validate_definition(_definition(vector))]
    error = vector.get("error")
    if error == "syntax":
        assert codes == ["DECISION_EXPR_SYNTAX" if boolean else "TRANSFORMATION_EXPR_SYNTAX"]
        if not boolean:
            with pytest.raises(ExpressionSyntaxError):
                compile_value("${" + vector["expression"] + "}")
        return
    if error == "nonBooleanAtUpload":
        assert codes == ["DECISION_EXPR_NON_BOOLEAN"]
        return
    assert codes == []
    expression = compile_expression(vector["expression"])
    variables = vector.get("variables", {})
    if error == "nonBoolean":
        with pytest.raises(NonBooleanResult):
            expression.evaluate_bool(variables)
    elif error == "eval":
        with pytest.raises(ExpressionEvaluationError) as info:
            (expression.evaluate_bool if boolean else expression.evaluate)(variables)
        if "reason" in vector:
            assert re.search(vector["reason"], str(info.value)), str(info.value)
    elif boolean:
        assert expression.evaluate_bool(variables) is vector["result"]
    else:
        stored = compile_value("${" + vector["expression"] + "}").evaluate(variables)
        assert identical(stored, vector["result"]), f"{stored!r} != {vector['result']!r}"


CASES = [
    pytest.param(table, case, id=f"{table['id']}-{number}")
    for table in TABLES
    for number, case in enumerate(table["cases"], start=1)
]


@pytest.mark.parametrize(("table", "case"), CASES)
def test_decision_table_vector(table: dict[str, Any], case: dict[str, Any]) -> None:
    step = {"id": "table", "name": "Table", "type": "DECISION_TABLE", **table["table"]}
    step["nextStep"] = "end"
    definition = parse_definition(
        {"id": "dt", "name": "DT", "steps": [step, {"id": "end", "name": "End", "type": "END"}]}
    )
    parsed = definition.steps[0]
    assert isinstance(parsed, DecisionTableStep)
    compiled = compile_decision_table(parsed)
    if "error" in case:
        with pytest.raises(DecisionTableError) as info:
            compiled.evaluate(case["variables"])
        assert info.value.kind == case["error"]
        assert str(info.value).startswith(f'{case["error"]}: step "table"')
    else:
        outputs = compiled.evaluate(case["variables"])
        assert identical(outputs, case["outputs"]), f"{outputs!r} != {case['outputs']!r}"
