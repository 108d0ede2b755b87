from __future__ import annotations

from typing import Any

import pytest

from rochallor_validator import (
    ExpressionEvaluationError,
    ExpressionSyntaxError,
    NonBooleanResult,
    compile_expression,
    parse_expression,
    print_expression,
    to_stored_value,
)

ERR = object()  # marker: evaluation error expected

# Every row of expressions.md section 8 (rows with two expressions are split).
EXAMPLES: list[tuple[str, str, dict[str, Any], Any]] = [
    ("1", "#verified == true && #score >= 700", {"verified": True, "score": 742}, True),
    ("2", "#verified == true && #score >= 700", {"verified": True, "score": 655}, False),
    ("3", "#verified == false", {"verified": False}, True),
    ("4", "#verified == true && #score < 700", {"verified": True, "score": 655}, True),
    ("5", "#genuine == true && #confidence >= 0.9", {"genuine": True, "confidence": 0.93}, True),
    ("6", "#genuine == false || #confidence < 0.7", {"genuine": False, "confidence": 0.93}, True),
    ("7", "#outcome == 'ACCEPTED'", {"outcome": "ACCEPTED"}, True),
    ("8", "${isEmployee == true}", {"isEmployee": True}, True),
    ("9", "${check.passed == true}", {"check": {"passed": True}}, True),
    ("10", "#mode == 1", {"mode": 1}, True),
    ("11", "#mode == 0", {"mode": 0.0}, True),
    ("12", "(#x == true || #y == true) && #z == true", {"x": False, "y": True, "z": True}, True),
    ("13", "unitPrice * count > 1000", {"unitPrice": 40, "count": 30}, True),
    ("14", "gross - rebate < limit", {"gross": 700, "rebate": 50, "limit": 660}, True),
    ("15", 'contains(groups, "OPS")', {"groups": ["DEV", "OPS"]}, True),
    ("16", "contains(groups, 'ROOT')", {"groups": ["DEV", "OPS"]}, False),
    ("17", '"OPS" in groups', {"groups": ["DEV", "OPS"]}, True),
    ("18", "len(files) > 0", {"files": ["a.pdf"]}, True),
    ("19", "len(files) == 0", {"files": []}, True),
    ("20", "len(files)", {"files": ["a", "b", "c"]}, 3),
    ("21", "net + vat", {"net": 80, "vat": 16}, 96),
    ("22", "net + vat", {"net": 80.5, "vat": 16}, 96.5),
    ("23", "sum / parts", {"sum": 90, "parts": 3}, 30.0),
    ("24", "7 / 2", {}, 3.5),
    ("25", "owner", {"owner": "Dana"}, "Dana"),
    ("26", 'first + " " + last', {"first": "Ada", "last": "Lovelace"}, "Ada Lovelace"),
    ("27a", "tier == 'GOLD'", {"tier": "GOLD"}, True),
    ("27b", 'tier == "GOLD"', {"tier": "GOLD"}, True),
    ("28a", "${points} > 9", {"points": 10}, True),
    ("28b", "points > 9", {"points": 10}, True),
    ("29", 'missing == "x"', {}, ERR),
    ("30", "false && missing", {}, ERR),
    ("31", "profile.nickname == null", {"profile": {}}, True),
    ("32", "profile.nickname == true", {"profile": {}}, False),
    ("33", "profile.nickname > 1", {"profile": {}}, ERR),
    ("34", "profile.city", {"profile": None}, ERR),
    ("35", "label.size", {"label": "abc"}, ERR),
    ("36", "a > b", {"a": "apple", "b": "banana"}, False),
    ("37", '"10" > "9"', {}, False),
    ("38", "code == 7", {"code": "7"}, False),
    ("39", '"7" == 7', {}, False),
    ("40", "code + 1", {"code": "7"}, ERR),
    ("41", "!blocked", {"blocked": False}, True),
    ("42", "!blocked", {"blocked": 0}, ERR),
    ("43", "active && true", {"active": 1}, ERR),
    ("44", "score > 5", {"score": None}, ERR),
    ("45", "3 in ids", {"ids": [1.0, 3.0]}, True),
    ("46", '"k" in opts', {"opts": {"k": 1}}, True),
    ("47", "1 in opts", {"opts": {"1": True}}, ERR),
    ("48", "x in none", {"x": 1, "none": None}, False),
    ("49", '"ADM" in "ADMIN"', {}, ERR),
    ("50", "len(word)", {"word": "héllo"}, 5),
    ("51", "len(n)", {"n": 5}, ERR),
    ("52", "amount * 0.01", {"amount": 200000000}, 2000000.0),
    ("53", "q / 0", {"q": 1}, ERR),
    ("54a", "1 + 2 * 3", {}, 7),
    ("54b", "(1 + 2) * 3", {}, 9),
    ("54c", "10 - 2 - 3", {}, 5),
    ("54d", "8 / 2 / 2", {}, 2.0),
    ("55", "-delta", {"delta": 3}, -3),
    ("56", "${a} + ${b}", {"a": 1, "b": 2}, 3),
    ("57", "#a-b", {"a": 5, "b": 2}, 3),
    ("58", "pair == other", {"pair": [1, 2], "other": [1, 2]}, True),
    ("59a", "x == nil", {"x": None}, True),
    ("59b", "x == null", {"x": None}, True),
]

SYNTAX_ERRORS = [
    ("60", "#a == 'hello"),
    ("61", "${open == true"),
    ("62", "a =="),
    ("63", "== b"),
    ("64", "(a && b"),
    ("65", "1 < 2 < 3"),
    ("66a", "a and b"),
    ("66b", "not a"),
    ("67a", "ok ? 1 : 2"),
    ("67b", "7 % 2"),
    ("67c", "2 ** 3"),
    ("67d", "items[0]"),
    ("68a", "upper(name)"),
    ("68b", "now()"),
    ("empty", ""),
    ("blank", "   "),
    ("trailing", "a > 1 +"),
    ("juxtaposed", "a b"),
    ("leading-dot", ".5 > a"),
    ("trailing-dot", "5. > a"),
    ("exponent", "1e3 > a"),
    ("single-equals", "a = 1"),
    ("len-arity", "len(a, b)"),
    ("contains-arity", "contains(a)"),
    ("hash-space", "# a"),
    ("dollar-space", "$ {a}"),
    ("keyword-var", "in == 1"),
]


@pytest.mark.parametrize(
    ("row", "source", "variables", "expected"), EXAMPLES, ids=[e[0] for e in EXAMPLES]
)
def test_spec_examples(row: str, source: str, variables: dict[str, Any], expected: Any) -> None:
    compiled = compile_expression(source)
    if expected is ERR:
        with pytest.raises(ExpressionEvaluationError):
            compiled.evaluate(variables)
        return
    result = compiled.evaluate(variables)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(("row", "source"), SYNTAX_ERRORS, ids=[e[0] for e in SYNTAX_ERRORS])
def test_syntax_errors(row: str, source: str) -> None:
    with pytest.raises(ExpressionSyntaxError):
        compile_expression(source)


@pytest.mark.parametrize(
    ("source", "variables", "stored"),
    [
        ("sum / parts", {"sum": 90, "parts": 3}, 30),
        ("amount * 0.01", {"amount": 200000000}, 2000000),
        ("8 / 2 / 2", {}, 2),
        ("7 / 2", {}, 3.5),
    ],
)
def test_storage_rule(source: str, variables: dict[str, Any], stored: Any) -> None:
    value = to_stored_value(compile_expression(source).evaluate(variables))
    assert value == stored
    assert type(value) is type(stored)


def test_storage_rule_keeps_large_and_fractional_floats() -> None:
    assert type(to_stored_value(2.0**53)) is float
    assert to_stored_value(2.5) == 2.5
    assert to_stored_value(True) is True


def test_undefined_variable_message_names_variable_and_expression() -> None:
    with pytest.raises(ExpressionEvaluationError) as info:
        compile_expression("false && ghost").evaluate({})
    assert info.value.detail == 'undefined variable "ghost"'
    assert str(info.value) == 'expression "false && ghost": undefined variable "ghost"'


def test_division_by_zero_message() -> None:
    with pytest.raises(ExpressionEvaluationError, match="division by zero"):
        compile_expression("q / 0").evaluate({"q": 1})


def test_integer_overflow() -> None:
    with pytest.raises(ExpressionEvaluationError, match="integer overflow"):
        compile_expression("big * big").evaluate({"big": 2**40})


def test_field_of_null_message() -> None:
    with pytest.raises(ExpressionEvaluationError, match='cannot read field "city" of null'):
        compile_expression("profile.city").evaluate({"profile": None})


def test_evaluate_bool_rejects_non_boolean() -> None:
    with pytest.raises(NonBooleanResult) as info:
        compile_expression("owner").evaluate_bool({"owner": "Dana"})
    assert str(info.value) == 'expression "owner": result is string, not bool'
    assert compile_expression("owner").evaluate_bool({"owner": True}) is True


def test_lenient_mode_undefined_root_is_null() -> None:
    assert compile_expression("fraudScore").evaluate_lenient({}) is None
    with pytest.raises(ExpressionEvaluationError):
        compile_expression("fraudScore").evaluate({})
    assert compile_expression("customer.tier").evaluate_lenient({"customer": {}}) is None
    # expressions.md section 6: only the undefined root is forgiven; a field of null still fails
    with pytest.raises(ExpressionEvaluationError, match="of null"):
        compile_expression("customer.tier").evaluate_lenient({})


def test_keywords_are_prefixes_of_identifiers() -> None:
    variables = {"index": 1, "nullable": 2, "trueValue": True, "len": 4, "contains": 5}
    assert compile_expression("index + nullable + len + contains").evaluate(variables) == 12
    assert compile_expression("trueValue").evaluate(variables) is True


def test_quotes_may_contain_the_other_quote_and_backslash_is_literal() -> None:
    assert compile_expression("x == \"it's\" || y == 'z'").evaluate({"x": "it's", "y": "q"}) is True
    assert compile_expression("'a\\b'").evaluate({}) == "a\\b"


def test_bool_is_not_a_number() -> None:
    assert compile_expression("flag == 1").evaluate({"flag": True}) is False
    with pytest.raises(ExpressionEvaluationError):
        compile_expression("flag + 1").evaluate({"flag": True})


def test_compiled_is_cached_and_reusable() -> None:
    first = compile_expression("amount > 1000")
    assert compile_expression("amount > 1000") is first
    assert [first.evaluate({"amount": a}) for a in (1, 1001, 1000.5)] == [False, True, True]


@pytest.mark.parametrize(
    ("source", "boolean"),
    [
        ("a > 1", True),
        ("a", True),
        ("!a", True),
        ("contains(a, 1)", True),
        ("(a)", True),
        ("${a == 1}", True),
        ("true", True),
        ("1 + 2", False),
        ("-a", False),
        ("'x'", False),
        ("null", False),
        ("len(a)", False),
        ("3", False),
    ],
)
def test_can_be_boolean(source: str, boolean: bool) -> None:
    assert compile_expression(source).can_be_boolean is boolean


@pytest.mark.parametrize(
    "source",
    [
        "a - (b - c)",
        "(a || b) && c",
        "!(a && b)",
        "-(-1)",
        "#a.b.c == 'x'",
        "(1 < 2) == true",
        "a * (b + c) / 2.5",
        "contains(x, len(y)) || z in w",
        "1 in (a)",
    ],
)
def test_printer_round_trip(source: str) -> None:
    ast = parse_expression(source)
    assert parse_expression(print_expression(ast)) == ast
