"""Hypothesis properties: model round-trip, printer/parser agreement, no foreign exceptions."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rochallor_validator import (
    ExpressionEvaluationError,
    ValidatorError,
    check_definition,
    compile_expression,
    definition_to_json,
    parse_definition,
    print_expression,
    validate_definition,
)
from rochallor_validator._expression import Binary, Call, Literal, Node, Reference, Unary

PROFILE = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ------------------------------------------------------------------------------------------
# Definitions

names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz -", min_size=1, max_size=12).filter(
    lambda s: s.strip() != ""
)
json_scalars = st.none() | st.booleans() | st.integers(-1000, 1000) | st.text(max_size=8)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
STEP_KINDS = ["SERVICE_TASK", "USER_TASK", "WAIT", "TRANSFORMATION", "DECISION", "DECISION_TABLE"]


@st.composite
def definitions(draw: st.DrawFn) -> dict[str, Any]:
    kinds = draw(st.lists(st.sampled_from(STEP_KINDS), min_size=0, max_size=6))
    ids = [f"s{i}" for i in range(len(kinds))] + ["end"]
    steps: list[dict[str, Any]] = []
    for i, kind in enumerate(kinds):
        nxt = ids[i + 1]
        step: dict[str, Any] = {"id": ids[i], "name": draw(names), "type": kind}
        if draw(st.booleans()):
            step["description"] = draw(st.text(max_size=10))
        if kind in ("SERVICE_TASK", "USER_TASK", "WAIT"):
            if kind == "SERVICE_TASK" or draw(st.booleans()):
                step["jobType"] = draw(names) if kind != "WAIT" else None
                if step["jobType"] is None:
                    del step["jobType"]
            if kind == "SERVICE_TASK" and draw(st.booleans()):
                step["retryCount"] = draw(st.integers(0, 10))
            if kind == "SERVICE_TASK" and draw(st.booleans()):
                step["delegateClass"] = draw(names)
            step["nextStep"] = nxt
            if draw(st.booleans()):
                step["conditionalNextSteps"] = {"x > 1": nxt, "${x <= 1}": "end"}
            if draw(st.booleans()):
                step["boundaryEvents"] = [
                    {
                        "type": "TIMER",
                        "duration": draw(st.sampled_from(["PT30S", "P7D", "P1W", "P1M", "PT1.5S"])),
                        "targetStepId": "end",
                        **({"interrupting": draw(st.booleans())} if draw(st.booleans()) else {}),
                    }
                ]
        elif kind == "TRANSFORMATION":
            step["transformations"] = draw(
                st.dictionaries(names, json_values | st.just("${a + 1}"), min_size=1, max_size=4)
            )
            step["nextStep"] = nxt
        elif kind == "DECISION":
            step["conditionalNextSteps"] = {"flag == true": nxt, "flag != true": "end"}
        else:
            output: dict[str, Any] = {"name": "out"}
            if draw(st.booleans()):
                output["defaultValue"] = draw(json_values)
            step.update(
                {
                    "hitPolicy": draw(st.sampled_from(["U", "F", "A"])),
                    "inputs": [{"id": "in", "expression": "score"}],
                    "outputs": [output],
                    "rules": [
                        {"id": "r1", "inputEntries": ["< 5"], "outputEntries": [draw(json_values)]},
                        {"inputEntries": ["[5..10]"], "outputEntries": ["${score * 2}"]},
                    ],
                    "nextStep": nxt,
                }
            )
        steps.append(step)
    steps.append({"id": "end", "name": "End", "type": "END"})
    suffix = draw(st.from_regex(r"[a-z0-9_-]{1,10}", fullmatch=True))
    doc: dict[str, Any] = {"id": "PROP::" + suffix, "name": draw(names), "steps": steps}
    if draw(st.booleans()):
        doc["autoStartNextWorkflow"] = True
        doc["nextWorkflowId"] = "NEXT::wf"
    if draw(st.booleans()):
        doc["metadata"] = draw(st.dictionaries(st.text(max_size=5), json_values, max_size=3))
    if draw(st.booleans()):
        doc["version"] = draw(st.integers(1, 99))
    return doc


@PROFILE
@given(definitions())
def test_definition_round_trip(doc: dict[str, Any]) -> None:
    text = json.dumps(doc)
    out = definition_to_json(parse_definition(text))
    assert out == doc
    for out_step, raw_step in zip(out["steps"], doc["steps"], strict=True):
        for key in ("conditionalNextSteps", "transformations"):
            if key in raw_step:
                assert list(out_step[key]) == list(raw_step[key])


# ------------------------------------------------------------------------------------------
# Expressions

VARIABLES: dict[str, Any] = {
    "a": 3, "b": 2.5, "s": "text", "t": True, "f": False, "n": None, "arr": [1, "x", 2.0],
    "obj": {"k": 1, "inner": {"z": "y"}}, "zero": 0,
}  # fmt: skip

literals = st.builds(
    Literal,
    st.none()
    | st.booleans()
    | st.integers(0, 10**6)
    | st.floats(0, 1e6, allow_nan=False, allow_infinity=False)
    | st.text(alphabet="ab 'xy", max_size=4),
)
references = st.builds(
    Reference,
    st.sampled_from(
        [("a",), ("b",), ("s",), ("t",), ("arr",), ("obj", "k"), ("obj", "inner", "z"), ("n",)]
    ),
    st.booleans(),
)
BINARY_OPS = ["||", "&&", "==", "!=", "<", "<=", ">", ">=", "in", "+", "-", "*", "/"]


def _extend(inner: st.SearchStrategy[Node]) -> st.SearchStrategy[Node]:
    return (
        st.builds(Unary, st.sampled_from(["!", "-"]), inner)
        | st.builds(Binary, st.sampled_from(BINARY_OPS), inner, inner)
        | st.builds(lambda x: Call("len", (x,)), inner)
        | st.builds(lambda c, x: Call("contains", (c, x)), inner, inner)
    )


expressions = st.recursive(literals | references, _extend, max_leaves=8)


def _outcome(source: str) -> tuple[str, Any]:
    try:
        return ("ok", compile_expression(source).evaluate(VARIABLES))
    except ExpressionEvaluationError as exc:
        return ("error", exc.detail)


@PROFILE
@given(expressions)
def test_printed_expression_reparses_and_evaluates_the_same(node: Node) -> None:
    source = print_expression(node)
    reparsed = compile_expression(source)
    assert reparsed.ast == node
    assert _outcome(source) == _outcome(print_expression(reparsed.ast))
    kind, value = _outcome(source)
    if kind == "ok":
        assert value is None or isinstance(value, bool | int | float | str | list | dict)


# ------------------------------------------------------------------------------------------
# Arbitrary input

any_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=20,
)
STEP_KEYS = ["id", "name", "type", "nextStep", "conditionalNextSteps", "jobType", "retryCount",
             "transformations", "parallelNextSteps", "joinStep", "boundaryEvents", "hitPolicy",
             "aggregation", "inputs", "outputs", "rules", "description"]  # fmt: skip
step_like = st.fixed_dictionaries(
    {
        "type": st.sampled_from(
            ["SERVICE_TASK", "DECISION", "END", "DECISION_TABLE", "WAIT", "PARALLEL_GATEWAY", "X"]
        )
    },
    optional={k: any_json | st.text(max_size=5) for k in STEP_KEYS if k != "type"},
)
definition_like = st.fixed_dictionaries(
    {"steps": st.lists(step_like, max_size=4)},
    optional={
        "id": any_json,
        "name": any_json,
        "autoStartNextWorkflow": any_json,
        "metadata": any_json,
    },
)


@PROFILE
@given(any_json | definition_like)
def test_validator_never_raises_foreign_exceptions(data: Any) -> None:
    try:
        report = check_definition(data if isinstance(data, dict) else json.dumps(data))
        issues = validate_definition(json.dumps(data))
    except ValidatorError:
        return
    assert all(i.code and i.path.startswith("$") for i in issues)
    assert report.accepted == (report.errors == [])
    if report.accepted:
        assert report.definition is not None
        assert definition_to_json(report.definition) is not None
