"""Vectors and definition fixtures turned into scenarios that run through a live engine.

* ``vectors/expressions.json``: each vector becomes a TRANSFORMATION (value context) or a
  DECISION (boolean context) followed by END.
* ``vectors/decision-tables.json``: each case becomes a DECISION_TABLE step followed by END.
* ``definitions/valid|invalid``: each fixture is uploaded; valid ones must be accepted,
  invalid ones rejected with ``400`` naming the code in the file name.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from rochallor_conformance.errors import ScenarioFormatError
from rochallor_conformance.scenario import Scenario, build_scenario

RESULT_VARIABLE = "result"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9-]+", "-", text).strip("-").lower()


def expression_scenarios(path: Path, run: str, fixtures: Path) -> list[Scenario]:
    data = json.loads(path.read_text(encoding="utf-8"))
    scenarios = []
    for vector in data["vectors"]:
        name = f"expr-{_slug(vector['id'])}"
        scenarios.append(
            build_scenario(
                expression_scenario(vector),
                name,
                run,
                fixtures,
                source=f"{path.name}#{vector['id']}",
                group="expressions",
            )
        )
    return scenarios


def expression_scenario(vector: dict[str, Any]) -> dict[str, Any]:
    """The scenario document checking one expression vector on an engine."""
    expression = vector["expression"]
    context = vector.get("context", "value")
    error = vector.get("error")
    end = {"id": "end", "name": "End", "type": "END"}
    if context == "value":
        step: dict[str, Any] = {
            "id": "evaluate",
            "name": "Evaluate",
            "type": "TRANSFORMATION",
            "transformations": {RESULT_VARIABLE: "${" + expression + "}"},
            "nextStep": "end",
        }
        steps = [step, end]
        syntax_code = "TRANSFORMATION_EXPR_SYNTAX"
        eval_reason = r'^transformation "result": expression eval'
    elif context == "boolean":
        step = {
            "id": "evaluate",
            "name": "Evaluate",
            "type": "DECISION",
            "conditionalNextSteps": {expression: "end-true", "true": "end-false"},
        }
        steps = [
            step,
            {"id": "end-true", "name": "True", "type": "END"},
            {"id": "end-false", "name": "False", "type": "END"},
        ]
        syntax_code = "DECISION_EXPR_SYNTAX"
        eval_reason = r"^expression eval error: "
    else:
        raise ScenarioFormatError(f"vector {vector['id']}: context must be value or boolean")
    definition = {"id": "expr", "name": f"Expression {vector['id']}", "steps": steps}
    if error in ("syntax", "nonBooleanAtUpload"):
        code = syntax_code if error == "syntax" else "DECISION_EXPR_NON_BOOLEAN"
        return {
            "steps": [
                {"do": "upload", "definition": definition, "expectError": "bad_request"},
                {"do": "upload", "definition": definition, "expectError": code},
            ]
        }
    expect: dict[str, Any] = {"do": "expect"}
    if error == "eval":
        expect["status"] = "FAILED"
        expect["failureReason"] = eval_reason + (
            ".*" + vector["reason"] if "reason" in vector else ""
        )
    elif error == "nonBoolean":
        expect["status"] = "FAILED"
        expect["failureReason"] = r"^expression \".*\": result is \w+, not bool"
    elif error is not None:
        raise ScenarioFormatError(f"vector {vector['id']}: unknown error kind {error!r}")
    elif context == "value":
        expect["status"] = "COMPLETED"
        expect["exactVariables"] = {RESULT_VARIABLE: vector["result"]}
    else:
        expect["status"] = "COMPLETED"
        taken = "end-true" if vector["result"] is True else "end-false"
        expect["history"] = ["evaluate:COMPLETED", f"{taken}:COMPLETED"]
    return {
        "definitions": [definition],
        "steps": [
            {"do": "start", "definitionId": "expr", "variables": vector.get("variables", {})},
            expect,
        ],
    }


def decision_table_scenarios(path: Path, run: str, fixtures: Path) -> list[Scenario]:
    data = json.loads(path.read_text(encoding="utf-8"))
    scenarios = []
    for table in data["tables"]:
        for number, case in enumerate(table["cases"], start=1):
            name = f"dt-{_slug(table['id'])}-{number}"
            scenarios.append(
                build_scenario(
                    decision_table_scenario(table, case),
                    name,
                    run,
                    fixtures,
                    source=f"{path.name}#{table['id']}/{number}",
                    group="decision-tables",
                )
            )
    return scenarios


def decision_table_scenario(table: dict[str, Any], case: dict[str, Any]) -> dict[str, Any]:
    step = {"id": "table", "name": "Table", "type": "DECISION_TABLE", **table["table"]}
    step["nextStep"] = "end"
    definition = {
        "id": "dt",
        "name": f"Decision table {table['id']}",
        "steps": [step, {"id": "end", "name": "End", "type": "END"}],
    }
    expect: dict[str, Any] = {"do": "expect"}
    if "error" in case:
        expect["status"] = "FAILED"
        expect["failureReason"] = "^" + re.escape(f'{case["error"]}: step "table"')
        expect["history"] = ["table:FAILED"]
        expect["absentVariables"] = [
            o["name"] for o in table["table"]["outputs"] if o["name"] not in case["variables"]
        ]
    else:
        expect["status"] = "COMPLETED"
        expect["exactVariables"] = case["outputs"]
        expect["history"] = ["table:COMPLETED", "end:COMPLETED"]
    return {
        "definitions": [definition],
        "steps": [{"do": "start", "definitionId": "dt", "variables": case["variables"]}, expect],
    }


def definition_scenarios(definitions: Path, run: str) -> list[Scenario]:
    """Uploads of every definition fixture (valid: accepted; invalid: 400 with its code)."""
    # Fixture bodies are uploaded exactly as stored: renaming could push an identifier past its
    # length limit (valid) or repair or change the fault (invalid).
    scenarios = [
        Scenario(
            name=f"def-valid-{_slug(path.stem)}",
            description="upload of a valid definition is accepted",
            covers=("definitions",),
            definitions=(),
            workers={},
            actions=(
                {
                    "do": "upload",
                    "definition": json.loads(path.read_text(encoding="utf-8")),
                    "raw": True,
                },
            ),
            timeout=30.0,
            source=f"definitions/valid/{path.name}",
            group="definitions",
        )
        for path in sorted((definitions / "valid").glob("*.json"))
    ]
    for path in sorted((definitions / "invalid").glob("*.json")):
        code = path.stem.split("--", 1)[0]
        body = json.loads(path.read_text(encoding="utf-8"))
        scenarios.append(
            Scenario(
                name=f"def-invalid-{_slug(path.stem)}",
                description=f"upload of an invalid definition is rejected with {code}",
                covers=("definitions",),
                definitions=(),
                workers={},
                actions=({"do": "upload", "definition": body, "raw": True, "expectError": code},),
                timeout=30.0,
                source=f"definitions/invalid/{path.name}",
                group="definitions",
            )
        )
    return scenarios
