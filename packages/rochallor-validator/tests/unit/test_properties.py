"""Hypothesis properties: model round-trip, printer/parser agreement, no foreign exceptions."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rochallor_validator import (
    ExpressionEvaluationError,
    ExpressionSyntaxError,
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


def storable_text(max_size: int) -> st.SearchStrategy[str]:
    """Any text PostgreSQL can store (no NUL character)."""
    return st.text(st.characters(exclude_characters="\x00"), max_size=max_size)


names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz -", min_size=1, max_size=12).filter(
    lambda s: s.strip() != ""
)
json_scalars = st.none() | st.booleans() | st.integers(-1000, 1000) | storable_text(8)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(storable_text(5), inner, max_size=3)
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
            step["description"] = draw(storable_text(10))
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
        doc["metadata"] = draw(st.dictionaries(storable_text(5), json_values, max_size=3))
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
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
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
    report = check_definition(data if isinstance(data, dict) else json.dumps(data))
    issues = validate_definition(json.dumps(data))
    assert all(i.code and i.path.startswith("$") for i in issues)
    assert report.accepted == (report.errors == [])
    if report.accepted:
        assert report.definition is not None
        assert definition_to_json(report.definition) is not None


# ------------------------------------------------------------------------------------------
# Limits: nothing a client sends makes the validator raise, and what it accepts can run

EXPRESSION_ALPHABET = "()!-+*/&|=<>${}.,'\" #0123456789abtlenfrusic\t\u0000é"
OPENERS = ["(", "!", "-", "${", "len(", "contains(a, ", "a && ", "1 + "]


@st.composite
def expression_like(draw: st.DrawFn) -> str:
    """Arbitrary text, often with long runs of nesting openers and operator chains."""
    head = draw(st.text(alphabet=EXPRESSION_ALPHABET, max_size=40) | st.text(max_size=20))
    if draw(st.booleans()):
        return head
    opener = draw(st.sampled_from(OPENERS))
    count = draw(st.integers(0, 400))
    closer = {"(": ")", "${": "}", "len(": ")", "contains(a, ": ")"}.get(opener, "")
    return opener * count + head + closer * draw(st.integers(0, count))


@settings(max_examples=300, deadline=None)
@given(expression_like())
def test_any_string_compiles_or_is_a_syntax_error(source: str) -> None:
    try:
        compiled = compile_expression(source)
    except ExpressionSyntaxError:
        return
    with contextlib.suppress(ExpressionEvaluationError):
        compiled.evaluate(VARIABLES)


DURATION_DIGITS = st.integers(0, 10**20).map(str) | st.just("9" * 5000)
durations = st.builds(
    lambda y, d, h, s: f"P{y}Y{d}DT{h}H{s}S", DURATION_DIGITS, DURATION_DIGITS,
    DURATION_DIGITS, DURATION_DIGITS,
) | st.text(alphabet="PYMWDTHS0123456789.", max_size=12)  # fmt: skip
wild_numbers = (
    st.integers()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.sampled_from([2**63, -(2**63) - 1, 1e300, -1e25, 18446744073709551616])
)
wild_json = st.recursive(
    st.none() | st.booleans() | wild_numbers | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=12,
)


@st.composite
def wild_definitions(draw: st.DrawFn) -> Any:
    """Definitions with fields past the limits: numbers, strings, values, expressions."""
    doc = draw(definitions())
    for step in doc["steps"]:
        if step["type"] == "SERVICE_TASK" and draw(st.booleans()):
            step["retryCount"] = draw(st.integers() | st.integers(-5, 2_000_000))
        if "boundaryEvents" in step and draw(st.booleans()):
            step["boundaryEvents"][0]["duration"] = draw(durations)
        if "conditionalNextSteps" in step and draw(st.booleans()):
            step["conditionalNextSteps"] = {draw(expression_like()): "end"}
        if step["type"] == "TRANSFORMATION" and draw(st.booleans()):
            step["transformations"] = {
                "x": draw(wild_json | expression_like().map("${{{}}}".format))
            }
        if draw(st.integers(0, 9)) == 0:
            step["jobType"] = "j" * draw(st.integers(250, 300))
    if draw(st.booleans()):
        doc["version"] = draw(st.integers())
    if draw(st.booleans()):
        deep: Any = draw(wild_json)
        for _ in range(draw(st.integers(0, 200))):
            deep = [deep]
        doc["metadata"] = {"m": deep}
    return doc


LATEST_START = datetime(9000, 12, 31, 23, 59, 59, tzinfo=UTC)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(wild_definitions())
def test_any_definition_gets_a_report_and_what_is_accepted_can_run(doc: Any) -> None:
    text = json.dumps(doc)  # may contain NaN/Infinity, which the loader accepts
    report = check_definition(text)
    assert check_definition(doc).errors == report.errors
    assert all(i.code and i.path.startswith("$") and i.message for i in report.errors)
    if not report.accepted:
        return
    assert report.definition is not None
    # storable: strict JSON (no NaN/Infinity), every number within the 64-bit range
    stored = json.dumps(definition_to_json(report.definition), allow_nan=False)
    assert json.loads(stored) is not None
    for step in report.definition.steps:
        retry = getattr(step, "retry_count", None)
        assert retry is None or 0 <= retry <= 2**31 - 1
        for event in getattr(step, "boundary_events", None) or ():
            event.parsed_duration.add_to(LATEST_START)  # schedulable: no overflow
        for branch in getattr(step, "conditional_next_steps", None) or ():
            compile_expression(branch.condition)
