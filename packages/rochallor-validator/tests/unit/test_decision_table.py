from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from rochallor_validator import (
    DecisionTableError,
    DecisionTableStep,
    EntrySyntaxError,
    compile_decision_table,
    parse_definition,
    parse_input_entry,
)
from rochallor_validator._decision_table import compile_input_entry

RISK: dict[str, Any] = {
    "id": "classify-risk",
    "name": "Classify risk",
    "type": "DECISION_TABLE",
    "hitPolicy": "U",
    "inputs": [
        {"id": "score", "expression": "applicant.creditScore"},
        {"id": "fraud", "expression": "fraudScore"},
    ],
    "outputs": [{"name": "riskBand"}, {"name": "maxLoan"}],
    "rules": [
        {"id": "high-fraud", "inputEntries": ["-", "> 0.8"], "outputEntries": ["HIGH", 0]},
        {"id": "poor", "inputEntries": ["< 500", "<= 0.8"], "outputEntries": ["HIGH", 0]},
        {
            "id": "fair",
            "inputEntries": ["[500..650)", "<= 0.8"],
            "outputEntries": ["MEDIUM", 20000],
        },
        {
            "id": "good",
            "inputEntries": [">= 650", "<= 0.8"],
            "outputEntries": ["LOW", "${applicant.income * 3}"],
        },
    ],
    "nextStep": "end",
}

DISCOUNT: dict[str, Any] = {
    "id": "pick-discount",
    "name": "Pick discount",
    "type": "DECISION_TABLE",
    "hitPolicy": "F",
    "inputs": [
        {"id": "tier", "expression": "customer.tier"},
        {"id": "country", "expression": "customer.country"},
        {"id": "total", "expression": "order.total"},
    ],
    "outputs": [
        {"name": "discountPct", "defaultValue": 0},
        {"name": "discountReason", "defaultValue": "none"},
    ],
    "rules": [
        {
            "id": "embargo",
            "inputEntries": ["-", "'KP', 'IR'", "-"],
            "outputEntries": [0, "blocked-country"],
        },
        {
            "id": "gold-big",
            "inputEntries": ["'GOLD'", "-", ">= 1000"],
            "outputEntries": [15, "gold-large-order"],
        },
        {"id": "gold", "inputEntries": ["'GOLD'", "-", "-"], "outputEntries": [10, "gold"]},
        {
            "id": "silver-intl",
            "inputEntries": ["'SILVER'", "not('US', 'CA')", "[100..1000]"],
            "outputEntries": [5, "silver-intl"],
        },
    ],
    "nextStep": "end",
}

FEES: dict[str, Any] = {
    "id": "sum-fees",
    "name": "Sum fees",
    "type": "DECISION_TABLE",
    "hitPolicy": "C+",
    "inputs": [
        {"id": "amount", "expression": "loanAmount"},
        {"id": "express", "expression": "expressDisbursement"},
        {"id": "channel", "expression": "channel"},
    ],
    "outputs": [{"name": "totalFee"}],
    "rules": [
        {"id": "base", "inputEntries": ["-", "-", "-"], "outputEntries": [25]},
        {
            "id": "large",
            "inputEntries": ["> 100000", "-", "-"],
            "outputEntries": ["${loanAmount * 0.001}"],
        },
        {"id": "express", "inputEntries": ["-", "true", "-"], "outputEntries": [40]},
        {"id": "branch", "inputEntries": ["-", "-", "'BRANCH'"], "outputEntries": [10]},
    ],
    "nextStep": "end",
}


def table(step: dict[str, Any], **changes: Any) -> DecisionTableStep:
    step = {**step, **changes}
    definition = parse_definition(
        {"id": "T", "name": "T", "steps": [step, {"id": "end", "name": "End", "type": "END"}]}
    )
    parsed = definition.steps[0]
    assert isinstance(parsed, DecisionTableStep)
    return parsed


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        (
            {"applicant": {"creditScore": 720, "income": 40000}, "fraudScore": 0.1},
            {"riskBand": "LOW", "maxLoan": 120000},
        ),
        (
            {"applicant": {"creditScore": 600, "income": 30000}, "fraudScore": 0.3},
            {"riskBand": "MEDIUM", "maxLoan": 20000},
        ),
        (
            {"applicant": {"creditScore": 720, "income": 40000}, "fraudScore": 0.95},
            {"riskBand": "HIGH", "maxLoan": 0},
        ),
        (
            {"applicant": {"creditScore": 650, "income": 10000}, "fraudScore": 0.2},
            {"riskBand": "LOW", "maxLoan": 30000},
        ),
    ],
)
def test_unique_risk_band(variables: dict[str, Any], expected: dict[str, Any]) -> None:
    assert compile_decision_table(table(RISK)).evaluate(variables) == expected


@pytest.mark.parametrize(
    "variables",
    [{"applicant": {"income": 1000}, "fraudScore": 0.2}, {"applicant": {"creditScore": 700}}],
)
def test_unique_no_match_fails(variables: dict[str, Any]) -> None:
    with pytest.raises(DecisionTableError) as info:
        compile_decision_table(table(RISK)).evaluate(variables)
    assert info.value.kind == "DecisionTableNoRuleMatched"
    assert str(info.value) == 'DecisionTableNoRuleMatched: step "classify-risk"'


def test_unique_violation() -> None:
    rules = [dict(r) for r in RISK["rules"]]
    rules[2]["inputEntries"] = ["[500..650]", "<= 0.8"]
    compiled = compile_decision_table(table(RISK, rules=rules))
    with pytest.raises(DecisionTableError) as info:
        compiled.evaluate({"applicant": {"creditScore": 650, "income": 10000}, "fraudScore": 0.2})
    assert str(info.value) == (
        'DecisionTableUniqueViolation: step "classify-risk": rules fair, good matched'
    )


@pytest.mark.parametrize(
    ("customer", "order", "expected"),
    [
        ({"tier": "GOLD", "country": "DE"}, {"total": 1500}, (15, "gold-large-order")),
        ({"tier": "GOLD", "country": "KP"}, {"total": 1500}, (0, "blocked-country")),
        ({"tier": "SILVER", "country": "FR"}, {"total": 250}, (5, "silver-intl")),
        ({"tier": "SILVER", "country": "US"}, {"total": 250}, (0, "none")),
        ({"tier": "SILVER"}, {"total": 1000}, (5, "silver-intl")),
        ({"tier": "BRONZE", "country": "FR"}, {"total": 50}, (0, "none")),
    ],
)
def test_first_discount(
    customer: dict[str, Any], order: dict[str, Any], expected: tuple[Any, Any]
) -> None:
    result = compile_decision_table(table(DISCOUNT)).evaluate(
        {"customer": customer, "order": order}
    )
    assert result == {"discountPct": expected[0], "discountReason": expected[1]}


FEE_ROW1 = {"loanAmount": 250000, "expressDisbursement": True, "channel": "WEB"}


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        (FEE_ROW1, 315),
        ({"loanAmount": 50000, "expressDisbursement": False, "channel": "BRANCH"}, 35),
        ({"loanAmount": 50000, "channel": "WEB"}, 25),
    ],
)
def test_collect_sum(variables: dict[str, Any], expected: int) -> None:
    result = compile_decision_table(table(FEES)).evaluate(variables)
    assert result == {"totalFee": expected}
    assert type(result["totalFee"]) is int


def test_collect_sum_long_form_is_equivalent() -> None:
    compiled = compile_decision_table(table(FEES, hitPolicy="C", aggregation="SUM"))
    assert compiled.evaluate(FEE_ROW1) == {"totalFee": 315}


@pytest.mark.parametrize(
    ("policy", "expected"),
    [("C#", 3), ("C<", 25), ("C>", 250), ("R", [25, 250, 40]), ("C", [25, 250, 40]), ("F", 25)],
)
def test_other_policies(policy: str, expected: Any) -> None:
    result = compile_decision_table(table(FEES, hitPolicy=policy)).evaluate(FEE_ROW1)
    assert result == {"totalFee": expected}
    assert type(result["totalFee"]) is type(expected)


def test_unique_and_any_failures_on_fee_table() -> None:
    with pytest.raises(DecisionTableError) as unique:
        compile_decision_table(table(FEES, hitPolicy="U")).evaluate(FEE_ROW1)
    assert str(unique.value) == (
        'DecisionTableUniqueViolation: step "sum-fees": rules base, large, express matched'
    )
    with pytest.raises(DecisionTableError) as anyc:
        compile_decision_table(table(FEES, hitPolicy="A")).evaluate(FEE_ROW1)
    assert str(anyc.value) == (
        'DecisionTableAnyConflict: step "sum-fees": rules base, large produced different outputs'
    )


def test_any_with_equal_outputs() -> None:
    rules = [
        {"inputEntries": ["-", "-", "-"], "outputEntries": [1]},
        {"inputEntries": ["-", "-", "-"], "outputEntries": [1.0]},
    ]
    result = compile_decision_table(table(FEES, hitPolicy="A", rules=rules)).evaluate(FEE_ROW1)
    assert result == {"totalFee": 1}


def test_empty_match_results() -> None:
    none_match = {"loanAmount": 1, "expressDisbursement": False, "channel": "WEB"}
    rules = [{"inputEntries": ["> 5", "-", "-"], "outputEntries": [1]}]
    assert compile_decision_table(table(FEES, hitPolicy="R", rules=rules)).evaluate(none_match) == {
        "totalFee": []
    }
    assert compile_decision_table(table(FEES, hitPolicy="C#", rules=rules)).evaluate(
        none_match
    ) == {"totalFee": 0}
    assert compile_decision_table(table(FEES, rules=rules)).evaluate(none_match) == {
        "totalFee": None
    }
    with_default = table(FEES, rules=rules, outputs=[{"name": "totalFee", "defaultValue": 7}])
    assert compile_decision_table(with_default).evaluate(none_match) == {"totalFee": 7}


def test_sum_over_string_is_eval_error() -> None:
    rules = [{"inputEntries": ["-", "-", "-"], "outputEntries": ["${channel}"]}]
    with pytest.raises(DecisionTableError) as info:
        compile_decision_table(table(FEES, rules=rules)).evaluate(FEE_ROW1)
    assert info.value.kind == "DecisionTableEvalError"


def test_output_expression_error_is_eval_error() -> None:
    rules = [{"inputEntries": ["-", "-", "-"], "outputEntries": ["${ghost + 1}"]}]
    with pytest.raises(DecisionTableError, match='DecisionTableEvalError: step "sum-fees"'):
        compile_decision_table(table(FEES, hitPolicy="F", rules=rules)).evaluate(FEE_ROW1)


def test_now_output_and_reuse() -> None:
    rules = [{"inputEntries": ["-", "-", "-"], "outputEntries": ["${now()}"]}]
    compiled = compile_decision_table(table(FEES, hitPolicy="F", rules=rules))
    now = datetime(2026, 5, 3, 7, 27, 19, 123, tzinfo=UTC)
    for _ in range(3):
        assert compiled.evaluate(FEE_ROW1, now=now) == {"totalFee": "2026-05-03T07:27:19Z"}


@pytest.mark.parametrize(
    ("entry", "matches", "rejects"),
    [
        ("-", [None, 1, "x", [1], {}], []),
        ("", [None, 1], []),
        ('""', [""], [None, 0]),
        ("'GOLD'", ["GOLD"], ["gold", None, 1]),
        ('"GOLD"', ["GOLD"], ["GOLD "]),
        ("42", [42, 42.0], ["42", None, True]),
        ("-1.5", [-1.5], [1.5]),
        ("true", [True], [1, "true", None]),
        ("null", [None], [0, False, ""]),
        ("< 500", [499, 499.9], [500, "1", None]),
        (">= 0.8", [0.8, 1], [0.7]),
        ('< "M"', ["A", "L"], ["M", "Z", 1]),
        ("[1..10]", [1, 10, 5.5], [0, 11, "5", None]),
        ("[500..650)", [500, 649.9], [650]),
        ("(0..1]", [0.5, 1], [0]),
        ("'KP', 'IR', 'SY'", ["KP", "SY"], ["US"]),
        ("1, 2, 3", [1, 2, 3], [4]),
        ("< 0, > 100", [-1, 101], [50]),
        ("not('US', 'CA')", ["FR", None, 1], ["US", "CA"]),
        ("not([1..5])", [0, 6, None], [3]),
        ("  -  ", [None], []),
    ],
)
def test_input_entries(entry: str, matches: list[Any], rejects: list[Any]) -> None:
    predicate = compile_input_entry(parse_input_entry(entry))
    for value in matches:
        assert predicate(value), (entry, value)
    for value in rejects:
        assert not predicate(value), (entry, value)


@pytest.mark.parametrize(
    "entry",
    [
        "= 5",
        "!= 5",
        "> limit",
        "]1..5[",
        "not(not(1))",
        "[1..]",
        "'open",
        "5.",
        "1e3",
        "[1..5",
        "not 1",
        "GOLD",
        "1 2",
    ],
)
def test_input_entry_syntax_errors(entry: str) -> None:
    with pytest.raises(EntrySyntaxError):
        parse_input_entry(entry)


def test_decide_returns_the_outputs_and_the_matched_rules_of_one_match() -> None:
    step = parse_definition(
        {
            "id": "T::dt",
            "name": "dt",
            "steps": [
                {
                    "id": "fees",
                    "name": "Fees",
                    "type": "DECISION_TABLE",
                    "hitPolicy": "C+",
                    "inputs": [{"id": "amount", "expression": "amount"}],
                    "outputs": [{"name": "fee"}],
                    "rules": [
                        {"id": "base", "inputEntries": ["-"], "outputEntries": [10]},
                        {"id": "big", "inputEntries": ["> 100"], "outputEntries": [5]},
                        {"id": "small", "inputEntries": ["<= 100"], "outputEntries": [1]},
                    ],
                    "nextStep": "end",
                },
                {"id": "end", "name": "End", "type": "END"},
            ],
        }
    ).steps[0]
    assert isinstance(step, DecisionTableStep)
    table = compile_decision_table(step)
    outputs, rules = table.decide({"amount": 500})
    assert outputs == {"fee": 15}
    assert rules == ["base", "big"]
    assert table.evaluate({"amount": 500}) == outputs
