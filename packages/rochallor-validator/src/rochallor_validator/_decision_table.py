"""DECISION_TABLE: input-entry (unary test) grammar, compilation and evaluation."""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Final, TypeAlias

import attrs

from rochallor_validator._errors import DecisionTableError, ExpressionError, ValidatorError
from rochallor_validator._expression import (
    INT64_MAX,
    INT64_MIN,
    CompiledExpression,
    compile_expression,
    is_number,
    json_equal,
    to_stored_value,
    type_name,
)
from rochallor_validator._model import DecisionTableStep
from rochallor_validator._runtime import ValueTemplate, compile_value

HIT_POLICIES: Final = frozenset({"U", "A", "F", "R", "C", "C+", "C#", "C<", "C>"})
AGGREGATIONS: Final = frozenset({"SUM", "COUNT", "MIN", "MAX"})
_COMPACT: Final = {"C+": "SUM", "C#": "COUNT", "C<": "MIN", "C>": "MAX"}

Predicate: TypeAlias = Callable[[Any], bool]


class EntrySyntaxError(ValidatorError):
    """Invalid decision-table input entry."""

    def __init__(self, entry: str, detail: str) -> None:
        self.entry = entry
        self.detail = detail
        super().__init__(f"input entry {entry!r}: {detail}")


@attrs.frozen
class Interval:
    low: int | float
    high: int | float
    low_closed: bool
    high_closed: bool

    @property
    def is_valid_range(self) -> bool:
        """Rule DECISION_TABLE_ENTRY_RANGE: low <= high; equal bounds must both be closed."""
        if self.low < self.high:
            return True
        return self.low == self.high and self.low_closed and self.high_closed


@attrs.frozen
class UnaryTests:
    """A parsed input entry. ``tests`` empty and not negated means ``-`` (match anything)."""

    tests: tuple[Any, ...] = ()  # literal values, ("cmp", op, x) tuples or Interval
    negated: bool = False

    @property
    def intervals(self) -> list[Interval]:
        return [t for t in self.tests if isinstance(t, Interval)]


_NUMBER_RE: Final = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
_WS: Final = " \t"


class _EntryParser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0

    def fail(self, detail: str) -> EntrySyntaxError:
        return EntrySyntaxError(self.text, f"{detail} at offset {self.i}")

    def ws(self) -> None:
        while self.i < len(self.text) and self.text[self.i] in _WS:
            self.i += 1

    def startswith(self, s: str) -> bool:
        return self.text.startswith(s, self.i)

    def number(self) -> int | float:
        m = _NUMBER_RE.match(self.text, self.i)
        if m is None:
            raise self.fail("expected a number")
        self.i = m.end()
        # "5." and "1e3" are not numbers: the next character must not continue the token
        rest = self.text[self.i : self.i + 1]
        if (rest.isalnum() or rest == ".") and not self.startswith(".."):
            raise self.fail("malformed number")
        text = m.group()
        if "." in text:
            value = float(text)
            if not math.isfinite(value):
                raise self.fail("number out of range")
            return value
        sign = -1 if text.startswith("-") else 1
        digits = text.lstrip("-").lstrip("0") or "0"
        number = sign * int(digits) if len(digits) <= 20 else INT64_MAX + 1
        if not INT64_MIN <= number <= INT64_MAX:
            raise self.fail("number out of range")
        return number

    def string(self) -> str:
        quote = self.text[self.i]
        end = self.text.find(quote, self.i + 1)
        if end < 0:
            raise self.fail("unterminated string")
        value = self.text[self.i + 1 : end]
        self.i = end + 1
        return value

    def literal_or_comparand(self, *, strings: bool = True) -> Any:
        if self.i < len(self.text) and self.text[self.i] in "'\"" and strings:
            return self.string()
        return self.number()

    def test(self) -> Any:
        self.ws()
        for op in ("<=", ">=", "<", ">"):
            if self.startswith(op):
                self.i += len(op)
                self.ws()
                return ("cmp", op, self.literal_or_comparand())
        if self.startswith("[") or (self.startswith("(")):
            low_closed = self.text[self.i] == "["
            self.i += 1
            self.ws()
            low = self.number()
            self.ws()
            if not self.startswith(".."):
                raise self.fail("expected '..'")
            self.i += 2
            self.ws()
            high = self.number()
            self.ws()
            if not (self.startswith("]") or self.startswith(")")):
                raise self.fail("expected ']' or ')'")
            high_closed = self.text[self.i] == "]"
            self.i += 1
            return Interval(low, high, low_closed, high_closed)
        for word, value in (("true", True), ("false", False), ("null", None)):
            if self.startswith(word):
                end = self.i + len(word)
                if end == len(self.text) or not (self.text[end].isalnum() or self.text[end] == "_"):
                    self.i = end
                    return value
        return self.literal_or_comparand()

    def tests(self) -> tuple[Any, ...]:
        items = [self.test()]
        self.ws()
        while self.startswith(","):
            self.i += 1
            items.append(self.test())
            self.ws()
        return tuple(items)

    def parse(self) -> UnaryTests:
        stripped = self.text.strip(_WS)
        if stripped in ("", "-"):
            return UnaryTests()
        self.ws()
        negated = False
        if self.startswith("not"):
            self.i += 3
            self.ws()
            if not self.startswith("("):
                raise self.fail("expected '(' after 'not'")
            self.i += 1
            tests = self.tests()
            if not self.startswith(")"):
                raise self.fail("expected ')'")
            self.i += 1
            negated = True
        else:
            tests = self.tests()
        self.ws()
        if self.i != len(self.text):
            raise self.fail("unexpected input")
        return UnaryTests(tests, negated)


def parse_input_entry(text: str) -> UnaryTests:
    """Parse a unary test of decision-table.md section 3.1; raises :class:`EntrySyntaxError`."""
    return _EntryParser(text).parse()


_CMP: Final = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


def _test_predicate(test: Any) -> Predicate:
    if isinstance(test, Interval):
        lo, hi = test.low, test.high
        lo_cmp = operator.ge if test.low_closed else operator.gt
        hi_cmp = operator.le if test.high_closed else operator.lt
        return lambda v: is_number(v) and lo_cmp(v, lo) and hi_cmp(v, hi)
    if isinstance(test, tuple):
        _, op, x = test
        cmp = _CMP[op]
        if isinstance(x, str):
            return lambda v: type(v) is str and cmp(v, x)
        return lambda v: is_number(v) and cmp(v, x)
    if test is None:
        return lambda v: v is None
    if test is True or test is False:
        return lambda v: v is test
    if isinstance(test, str):
        return lambda v: type(v) is str and v == test
    return lambda v: is_number(v) and v == test


def compile_input_entry(entry: UnaryTests) -> Predicate:
    if not entry.tests:
        return lambda v: True
    preds = [_test_predicate(t) for t in entry.tests]
    if entry.negated:
        return lambda v: not any(p(v) for p in preds)
    if len(preds) == 1:
        return preds[0]
    return lambda v: any(p(v) for p in preds)


def aggregation_of(step: DecisionTableStep) -> str | None:
    """``SUM``/``COUNT``/``MIN``/``MAX`` when the table aggregates, else None."""
    policy = step.effective_hit_policy
    if policy in _COMPACT:
        return _COMPACT[policy]
    if policy == "C":
        return step.aggregation
    return None


@attrs.frozen
class _Rule:
    name: str
    predicates: tuple[Predicate, ...]
    outputs: tuple[ValueTemplate, ...]


class CompiledDecisionTable:
    """A pre-compiled DECISION_TABLE step; :meth:`evaluate` may be called any number of times."""

    def __init__(self, step: DecisionTableStep) -> None:
        self.step = step
        self.step_id = step.id
        self.policy = step.effective_hit_policy
        self.aggregation = aggregation_of(step)
        try:
            self._inputs: tuple[tuple[str, CompiledExpression], ...] = tuple(
                (inp.id or f"#{i + 1}", compile_expression(inp.expression))
                for i, inp in enumerate(step.inputs)
            )
            self._names = tuple(out.name for out in step.outputs)
            self._defaults: tuple[ValueTemplate, ...] | None = (
                tuple(compile_value(o.default_value) for o in step.outputs)
                if all(o.has_default for o in step.outputs)
                else None
            )
            self._agg_default = (
                compile_value(step.outputs[0].default_value)
                if step.outputs and step.outputs[0].has_default
                else None
            )
            self._rules = tuple(
                _Rule(
                    name=rule.id or f"#{r + 1}",
                    predicates=tuple(
                        compile_input_entry(parse_input_entry(e)) for e in rule.input_entries
                    ),
                    outputs=tuple(compile_value(o) for o in rule.output_entries),
                )
                for r, rule in enumerate(step.rules)
            )
        except (ExpressionError, EntrySyntaxError) as exc:
            raise DecisionTableError(
                "DecisionTableInvalid", step.id, f"table does not validate: {exc}"
            ) from exc

    def _fail(self, kind: str, detail: str = "", rules: tuple[str, ...] = ()) -> DecisionTableError:
        return DecisionTableError(kind, self.step_id, detail, rules)

    def matching_rules(self, variables: Mapping[str, Any]) -> list[str]:
        """Names (id or ``#n``) of the rules that match, in rule order."""
        return [r.name for r in self._match(variables)]

    def _match(self, variables: Mapping[str, Any]) -> list[_Rule]:
        values = []
        for name, expr in self._inputs:
            try:
                values.append(expr.evaluate_lenient(variables))
            except ExpressionError as exc:
                raise self._fail("DecisionTableEvalError", f'input "{name}": {exc}') from exc
        return [
            rule
            for rule in self._rules
            if all(p(v) for p, v in zip(rule.predicates, values, strict=True))
        ]

    def _outputs(
        self, rule: _Rule, variables: Mapping[str, Any], now: datetime | None
    ) -> list[Any]:
        try:
            return [t.evaluate(variables, now) for t in rule.outputs]
        except ExpressionError as exc:
            raise self._fail("DecisionTableEvalError", f'rule "{rule.name}": {exc}') from exc

    def _defaults_or_fail(self, variables: Mapping[str, Any], now: datetime | None) -> list[Any]:
        if self._defaults is None:
            raise self._fail("DecisionTableNoRuleMatched")
        try:
            return [t.evaluate(variables, now) for t in self._defaults]
        except ExpressionError as exc:
            raise self._fail("DecisionTableEvalError", f"defaultValue: {exc}") from exc

    def evaluate(
        self, variables: Mapping[str, Any], *, now: datetime | None = None
    ) -> dict[str, Any]:
        """The outputs to shallow-merge into the variables (``{output name: value}``).

        Raises :class:`DecisionTableError` whose ``kind`` is the failure reason prefix.
        """
        return self.decide(variables, now=now)[0]

    def decide(
        self, variables: Mapping[str, Any], *, now: datetime | None = None
    ) -> tuple[dict[str, Any], list[str]]:
        """The outputs (as :meth:`evaluate`) and the names of the matched rules, matching once."""
        matched = self._match(variables)
        return self._result(matched, variables, now), [r.name for r in matched]

    def _result(
        self, matched: list[_Rule], variables: Mapping[str, Any], now: datetime | None
    ) -> dict[str, Any]:
        policy = self.policy
        if self.aggregation is not None:
            return {self._names[0]: self._aggregate(matched, variables, now)}
        if policy in ("R", "C"):
            columns: list[list[Any]] = [[] for _ in self._names]
            for rule in matched:
                for column, value in zip(columns, self._outputs(rule, variables, now), strict=True):
                    column.append(value)
            return dict(zip(self._names, columns, strict=True))
        if not matched:
            values = self._defaults_or_fail(variables, now)
        elif policy == "U" and len(matched) > 1:
            names = tuple(r.name for r in matched)
            raise self._fail(
                "DecisionTableUniqueViolation", f"rules {', '.join(names)} matched", names
            )
        elif policy == "A":
            values = self._outputs(matched[0], variables, now)
            for rule in matched[1:]:
                other = self._outputs(rule, variables, now)
                if not all(json_equal(a, b) for a, b in zip(values, other, strict=True)):
                    names = (matched[0].name, rule.name)
                    raise self._fail(
                        "DecisionTableAnyConflict",
                        f"rules {', '.join(names)} produced different outputs",
                        names,
                    )
        else:  # U with one match, F
            values = self._outputs(matched[0], variables, now)
        return dict(zip(self._names, values, strict=True))

    def _aggregate(
        self, matched: list[_Rule], variables: Mapping[str, Any], now: datetime | None
    ) -> Any:
        if self.aggregation == "COUNT":
            return len(matched)
        values = [
            v for rule in matched for v in self._outputs(rule, variables, now) if v is not None
        ]
        if not values:
            if self._agg_default is None:
                return None
            try:
                return self._agg_default.evaluate(variables, now)
            except ExpressionError as exc:
                raise self._fail("DecisionTableEvalError", f"defaultValue: {exc}") from exc
        if self.aggregation == "SUM":
            if not all(is_number(v) for v in values):
                bad = next(v for v in values if not is_number(v))
                raise self._fail("DecisionTableEvalError", f"SUM over a {type_name(bad)} value")
            total = sum(values)
            if (type(total) is int and not INT64_MIN <= total <= INT64_MAX) or (
                type(total) is float and not math.isfinite(total)
            ):
                raise self._fail("DecisionTableEvalError", "SUM overflows")
            return to_stored_value(total)
        if not (all(is_number(v) for v in values) or all(type(v) is str for v in values)):
            raise self._fail(
                "DecisionTableEvalError",
                f"{self.aggregation} needs all numbers or all strings",
            )
        result = min(values) if self.aggregation == "MIN" else max(values)
        return to_stored_value(result)


def compile_decision_table(step: DecisionTableStep) -> CompiledDecisionTable:
    """Pre-compile a (validated) DECISION_TABLE step."""
    return CompiledDecisionTable(step)
