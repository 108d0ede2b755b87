"""The limits of docs/validator.md ("Limits"): each accepted at its maximum, refused past it."""

from __future__ import annotations

import copy
import inspect
import json
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rochallor_validator import (
    LIMIT_CODES,
    MAX_DOCUMENT_DEPTH,
    MAX_DURATION_DAYS,
    MAX_EXPRESSION_DEPTH,
    MAX_EXPRESSION_LENGTH,
    MAX_EXPRESSION_NESTING,
    MAX_IDENTIFIER_LENGTH,
    MAX_INT,
    MAX_RETRY_COUNT,
    MAX_VERSION,
    MIN_INT,
    MIN_VERSION,
    ConditionalNextStep,
    DecisionTableError,
    DecisionTableStep,
    EntrySyntaxError,
    ExpressionError,
    ExpressionLimitError,
    ExpressionSyntaxError,
    ServiceTaskStep,
    check_definition,
    compile_decision_table,
    compile_expression,
    compile_value,
    json_equal,
    parse_definition,
    parse_duration,
    parse_input_entry,
    select_branch,
    validate_definition,
)


def base(**top: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": "TEST::limits",
        "name": "Limits",
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


def with_task(**fields: Any) -> dict[str, Any]:
    doc = base()
    doc["steps"][0].update(fields)
    return doc


def with_transformation(values: dict[str, Any]) -> dict[str, Any]:
    doc = base()
    doc["steps"][0]["nextStep"] = "set"
    doc["steps"].insert(
        1,
        {
            "id": "set",
            "name": "Set",
            "type": "TRANSFORMATION",
            "transformations": values,
            "nextStep": "end",
        },
    )
    return doc


def with_condition(condition: str) -> dict[str, Any]:
    return with_task(conditionalNextSteps={condition: "end"})


def issues(doc: Any) -> list[tuple[str, str]]:
    return [(i.code, i.path) for i in validate_definition(doc)]


def timer(duration: str) -> dict[str, Any]:
    return with_task(
        boundaryEvents=[{"type": "TIMER", "duration": duration, "targetStepId": "end"}]
    )


# ------------------------------------------------------------------------------------------
# Durations

DURATION_PATH = "$.steps[0].boundaryEvents[0].duration"


@pytest.mark.parametrize(
    "duration",
    ["P100Y", "P1200M", "P99Y12M", f"P{MAX_DURATION_DAYS}D", "PT878400H", "P5228W4D", "PT0S"],
)
def test_duration_at_the_limit_is_accepted(duration: str) -> None:
    assert issues(timer(duration)) == []


@pytest.mark.parametrize(
    "duration",
    [
        "P999999999D",
        "PT1000000000H",
        "P99999999999999Y",
        "P100YT1S",
        "P1201M",
        f"P{MAX_DURATION_DAYS}DT0.5S",
        "P" + "9" * 5000 + "D",
        "PT" + "9" * 5000 + ".5S",
        "P" + "0" * 5000 + "101Y",
    ],
)
def test_duration_past_the_limit_is_refused(duration: str) -> None:
    assert issues(timer(duration)) == [("BOUNDARY_DURATION_RANGE", DURATION_PATH)]


def test_huge_components_parse_without_foreign_errors() -> None:
    parsed = parse_duration("P" + "0" * 5000 + "1D")
    assert parsed.fixed == timedelta(days=1)
    assert parse_duration("PT" + "9" * 100 + "S").within_limit is False


LATEST_START = datetime(9000, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)


@settings(max_examples=200, deadline=None)
@given(
    st.tuples(*(st.integers(0, n) for n in (100, 1200, 5300, 36600, 900_000, 60_000_000))),
    st.decimals(0, 10**9, places=3, allow_nan=False, allow_infinity=False),
    st.datetimes(max_value=LATEST_START.replace(tzinfo=None), timezones=st.just(UTC)),
)
def test_any_accepted_duration_can_be_scheduled(
    parts: tuple[int, ...], seconds: Any, start: datetime
) -> None:
    years, months, weeks, days, hours, minutes = parts
    text = f"P{years}Y{months}M{weeks}W{days}DT{hours}H{minutes}M{seconds}S"
    duration = parse_duration(text)
    if duration.within_limit:
        fire_at = duration.add_to(start)  # never overflows a datetime
        assert start <= fire_at <= start + timedelta(days=MAX_DURATION_DAYS)
    else:
        assert issues(timer(text)) == [("BOUNDARY_DURATION_RANGE", DURATION_PATH)]


# ------------------------------------------------------------------------------------------
# retryCount, version


def test_retry_count_range() -> None:
    assert issues(with_task(retryCount=MAX_RETRY_COUNT)) == []
    assert issues(with_task(retryCount=0)) == []
    for bad in (MAX_RETRY_COUNT + 1, 10**12, 10**30, -1):
        assert issues(with_task(retryCount=bad)) == [("RETRY_COUNT_RANGE", "$.steps[0].retryCount")]


def test_retry_count_of_a_step_that_ignores_it_is_still_a_storable_number() -> None:
    doc = with_task(type="USER_TASK", retryCount=2**64)
    assert ("NUMBER_RANGE", "$.steps[0].retryCount") in issues(doc)


def test_version_range() -> None:
    assert issues(base(version=MAX_VERSION)) == []
    assert issues(base(version=MIN_VERSION)) == []
    for bad in (MAX_VERSION + 1, MIN_VERSION - 1, 10**40):
        assert issues(base(version=bad)) == [("VERSION_RANGE", "$.version")]


# ------------------------------------------------------------------------------------------
# Numbers and nesting anywhere in the document


@pytest.mark.parametrize("value", [MAX_INT, MIN_INT, 1e300, -1e25, 2.0**64, 5e-324, 0.1, 0])
def test_numbers_in_range_are_accepted(value: Any) -> None:
    assert issues(with_transformation({"x": value})) == []
    assert issues(base(metadata={"x": [value]})) == []


@pytest.mark.parametrize(
    "value", [MAX_INT + 1, MIN_INT - 1, 2**64, -(2**70), float("inf"), float("-inf"), float("nan")]
)
def test_numbers_out_of_range_are_refused_with_their_path(value: Any) -> None:
    assert issues(with_transformation({"x": value})) == [
        ("NUMBER_RANGE", "$.steps[1].transformations.x")
    ]
    assert issues(base(metadata={"a b": [1, value]})) == [("NUMBER_RANGE", '$.metadata["a b"][1]')]


def test_non_finite_numbers_in_json_text_are_refused() -> None:
    text = json.dumps(base()).replace(
        '"Limits"', '"Limits", "metadata": {"n": [NaN, -Infinity, 1e999]}'
    )
    assert issues(text) == [
        ("NUMBER_RANGE", "$.metadata.n[0]"),
        ("NUMBER_RANGE", "$.metadata.n[1]"),
        ("NUMBER_RANGE", "$.metadata.n[2]"),
    ]


def test_decision_table_outputs_and_defaults_are_checked() -> None:
    doc = base()
    doc["steps"][0]["nextStep"] = "t"
    doc["steps"].insert(
        1,
        {
            "id": "t",
            "name": "T",
            "type": "DECISION_TABLE",
            "inputs": [{"expression": "x"}],
            "outputs": [{"name": "o", "defaultValue": 2**70}],
            "rules": [{"inputEntries": ["-"], "outputEntries": [-(2**70)]}],
            "nextStep": "end",
        },
    )
    assert issues(doc) == [
        ("NUMBER_RANGE", "$.steps[1].outputs[0].defaultValue"),
        ("NUMBER_RANGE", "$.steps[1].rules[0].outputEntries[0]"),
    ]


def nested(levels: int) -> Any:
    """``levels`` arrays nested in one another (built without recursion)."""
    value: Any = []
    for _ in range(levels - 1):
        value = [value]
    return value


def test_nesting_depth() -> None:
    # the document is level 1 and "metadata" level 2
    assert issues(base(metadata={"x": nested(MAX_DOCUMENT_DEPTH - 2)})) == []
    assert issues(base(metadata={"x": nested(MAX_DOCUMENT_DEPTH - 1)})) == [
        ("NESTING_DEPTH", "$.metadata.x" + "[0]" * (MAX_DOCUMENT_DEPTH - 2))
    ]


def test_any_depth_is_reported_not_raised() -> None:
    deep = base(metadata={"x": nested(100_000)})
    assert [code for code, _ in issues(deep)] == ["NESTING_DEPTH"]
    text = '{"id": "x", "name": "y", "steps": [], "metadata": ' + "[" * 100_000 + "]" * 100_000
    assert [code for code, _ in issues(text + "}")] == ["PARSE_ERROR"]
    assert [code for code, _ in issues("[" * 100_000)] == ["PARSE_ERROR"]


def test_many_bad_numbers_are_listed_at_most_twenty_times() -> None:
    found = issues(base(metadata={"n": [2**64] * 1000}))
    assert found == [("NUMBER_RANGE", f"$.metadata.n[{i}]") for i in range(20)]


# ------------------------------------------------------------------------------------------
# String lengths


def test_identifier_lengths() -> None:
    at_max = "s" * MAX_IDENTIFIER_LENGTH
    doc = with_task(id=at_max, jobType=at_max)
    assert issues(doc) == []
    too_long = at_max + "s"
    assert issues(with_task(id=too_long)) == [("STRING_LENGTH", "$.steps[0].id")]
    assert issues(with_task(jobType=too_long)) == [("STRING_LENGTH", "$.steps[0].jobType")]
    user = with_task(type="USER_TASK", jobType=too_long)
    assert issues(user) == [("STRING_LENGTH", "$.steps[0].jobType")]
    chained = base(autoStartNextWorkflow=True, nextWorkflowId=too_long)
    assert issues(chained) == [("STRING_LENGTH", "$.nextWorkflowId")]


# ------------------------------------------------------------------------------------------
# Expressions


def limit_error(source: str) -> ExpressionLimitError:
    compile_expression.cache_clear()
    with pytest.raises(ExpressionLimitError) as info:
        compile_expression(source)
    return info.value


def test_expression_length() -> None:
    at_max = "s == '" + "x" * (MAX_EXPRESSION_LENGTH - 7) + "'"
    assert len(at_max) == MAX_EXPRESSION_LENGTH
    assert compile_expression(at_max).evaluate_bool({"s": "x"}) is False
    exc = limit_error(at_max + " ")
    assert (exc.limit, exc.position) == ("length", MAX_EXPRESSION_LENGTH)
    assert exc.source == at_max + " "
    assert len(str(exc)) < 300  # the message shows the start of the expression only


@pytest.mark.parametrize(
    ("opener", "closer"), [("(", ")"), ("${", "}"), ("len(", ")"), ("!", ""), ("-", "")]
)
def test_expression_nesting(opener: str, closer: str) -> None:
    n = MAX_EXPRESSION_NESTING
    compile_expression(opener * n + "a" + closer * n)
    exc = limit_error(opener * (n + 1) + "a" + closer * (n + 1))
    assert exc.limit == "nesting"
    assert exc.position == n * len(opener)  # the opener that went one level too deep
    assert isinstance(exc, ExpressionSyntaxError)


def test_expression_operator_depth() -> None:
    n = MAX_EXPRESSION_DEPTH
    chain = " && ".join(["t"] * n)  # n - 1 operators: depth n
    assert compile_expression(chain).evaluate_bool({"t": True}) is True
    exc = limit_error(chain + " && t")
    assert exc.limit == "depth"
    assert exc.position == len(chain) + 1
    sums = "1" + " + 1" * (n - 1)
    assert compile_expression(sums).evaluate({}) == n
    assert limit_error(sums + " + 1").limit == "depth"


@pytest.mark.parametrize(
    "source",
    [
        "(" * 150 + "flag" + ")" * 150,
        "!" * 1000 + "flag",
        " && ".join(["flag"] * 5000),
        "1" + " * 1" * 3000,
        "-" * 100_000 + "1",
        "len(" * 10_000 + "s" + ")" * 10_000,
        "${" * 500 + "x" + "}" * 500,
    ],
)
def test_deep_expressions_are_limit_errors_everywhere(source: str) -> None:
    assert limit_error(source).limit in ("nesting", "depth", "length")
    found = validate_definition(with_condition(source))
    assert [(i.code, i.path) for i in found] == [
        ("EXPR_LIMIT", "$.steps[0].conditionalNextSteps[0].condition")
    ]
    assert "offset" in found[0].message
    assert [code for code, _ in issues(with_transformation({"v": "${" + source + "}"}))] == [
        "EXPR_LIMIT"
    ]
    # run time (e.g. a definition stored before the limits): a clean expression error
    with pytest.raises(ExpressionError):
        select_branch([ConditionalNextStep(condition=source, target="end")], {"flag": True})
    with pytest.raises(ExpressionLimitError):
        compile_value("${" + source + "}")


def test_decision_table_expression_limits() -> None:
    deep = "(" * 40 + "x" + ")" * 40
    doc = base()
    doc["steps"][0]["nextStep"] = "t"
    doc["steps"].insert(
        1,
        {
            "id": "t",
            "name": "T",
            "type": "DECISION_TABLE",
            "inputs": [{"expression": deep}],
            "outputs": [{"name": "o", "defaultValue": "${" + deep + "}"}],
            "rules": [{"inputEntries": ["-"], "outputEntries": ["${" + deep + "}"]}],
            "nextStep": "end",
        },
    )
    assert issues(doc) == [
        ("EXPR_LIMIT", "$.steps[1].inputs[0].expression"),
        ("EXPR_LIMIT", "$.steps[1].outputs[0].defaultValue"),
        ("EXPR_LIMIT", "$.steps[1].rules[0].outputEntries[0]"),
    ]
    # run time (a table stored before the limits): a clean expression error
    step = copy.deepcopy(doc["steps"][1])
    step["inputs"] = [{"expression": "x"}]
    step["outputs"] = [{"name": "o"}]
    raw = {"id": "T", "name": "T", "steps": [step, {"id": "end", "name": "E", "type": "END"}]}
    definition = check_definition(raw).definition
    assert definition is not None
    table = definition.steps[0]
    assert isinstance(table, DecisionTableStep)
    with pytest.raises(DecisionTableError) as info:
        compile_decision_table(table)
    assert isinstance(info.value.__cause__, ExpressionLimitError)


def test_literals_out_of_range_are_syntax_errors() -> None:
    for source in ("x == 9223372036854775808", "x == " + "9" * 4000, "x < " + "1" * 400 + ".0"):
        compile_expression.cache_clear()
        with pytest.raises(ExpressionSyntaxError) as info:
            compile_expression(source)
        assert not isinstance(info.value, ExpressionLimitError)
        assert "out of range" in info.value.detail
    assert compile_expression("-9223372036854775807 - 1").evaluate({}) == MIN_INT
    assert compile_expression("0009223372036854775807").evaluate({}) == MAX_INT


def test_compile_with_an_almost_exhausted_stack_is_a_limit_error() -> None:
    source = "(" * MAX_EXPRESSION_NESTING + "a" + ")" * MAX_EXPRESSION_NESTING
    compile_expression.cache_clear()
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(len(inspect.stack(0)) + 40)
    try:
        with pytest.raises(ExpressionLimitError):
            compile_expression(source)
    finally:
        sys.setrecursionlimit(old)


def test_deep_values_compare_without_recursion() -> None:
    a = nested(20_000)
    b = nested(20_000)
    assert json_equal(a, b)
    assert not json_equal(a, nested(19_999))
    variables = {"a": a, "b": b, "c": [1, a]}
    assert compile_expression("a == b").evaluate_bool(variables) is True
    assert compile_expression("b in c").evaluate_bool(variables) is True


# ------------------------------------------------------------------------------------------
# Decision-table numbers


def test_entry_numbers_out_of_range_are_entry_syntax_errors() -> None:
    assert parse_input_entry(f"[{MIN_INT}..{MAX_INT}]").intervals
    for entry in (
        f"< {MAX_INT + 1}",
        f"> {MIN_INT - 1}",
        "< " + "9" * 5000,
        "< 1" + "0" * 400 + ".5",
    ):
        with pytest.raises(EntrySyntaxError, match="out of range"):
            parse_input_entry(entry)


def test_sum_that_overflows_fails_the_table_not_the_engine() -> None:
    step = {
        "id": "t",
        "name": "T",
        "type": "DECISION_TABLE",
        "hitPolicy": "C+",
        "inputs": [{"expression": "x"}],
        "outputs": [{"name": "total"}],
        "rules": [
            {"inputEntries": ["-"], "outputEntries": [MAX_INT]},
            {"inputEntries": ["-"], "outputEntries": [1]},
        ],
        "nextStep": "end",
    }
    definition = parse_definition(
        {"id": "T", "name": "T", "steps": [step, {"id": "end", "name": "E", "type": "END"}]}
    )
    table = definition.steps[0]
    assert isinstance(table, DecisionTableStep)
    with pytest.raises(DecisionTableError, match="SUM overflows"):
        compile_decision_table(table).evaluate({"x": 1})


# ------------------------------------------------------------------------------------------
# NUL characters (PostgreSQL text and jsonb cannot hold them)


def test_nul_characters_are_refused_with_their_path() -> None:
    doc = base(name="a\x00b", metadata={"k\x00": "v", "v": ["\x00"]})
    doc["steps"][0]["jobType"] = "w\x00"
    assert issues(doc) == [
        ("NUL_CHARACTER", "$.name"),
        ("NUL_CHARACTER", "$.steps[0].jobType"),
        ("NUL_CHARACTER", '$.metadata["k\\u0000"]'),
        ("NUL_CHARACTER", "$.metadata.v[0]"),
    ]
    escaped = json.dumps(base(description="\x00"))
    assert "\\u0000" in escaped
    assert issues(escaped) == [("NUL_CHARACTER", "$.description")]


# ------------------------------------------------------------------------------------------
# Reading back a definition stored before the limits


def test_limits_can_be_left_out_to_read_back_stored_definitions() -> None:
    deep = "(" * 40 + "flag" + ")" * 40
    doc = with_task(
        retryCount=10**12,
        jobType="w" * 300,
        conditionalNextSteps={deep: "end"},
        boundaryEvents=[{"type": "TIMER", "duration": "P200Y", "targetStepId": "end"}],
    )
    doc.update(version=2**40, metadata={"big": 2**64})
    found = {i.code for i in validate_definition(doc)}
    assert found == LIMIT_CODES - {"NESTING_DEPTH", "NUL_CHARACTER"} | {"RETRY_COUNT_RANGE"}
    definition = parse_definition(doc, limits=False)
    assert check_definition(doc, limits=False).errors == []
    # what the limits guard against now fails cleanly where it is used
    step = definition.steps[0]
    assert isinstance(step, ServiceTaskStep)
    with pytest.raises(ExpressionLimitError):
        select_branch(step.conditional_next_steps or (), {"flag": True})
    # the other rules still apply
    assert [i.code for i in check_definition(with_task(retryCount=-1), limits=False).errors] == [
        "RETRY_COUNT_RANGE"
    ]
