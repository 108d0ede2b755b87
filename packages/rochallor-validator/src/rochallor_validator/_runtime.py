"""Run-time helpers for the synchronous step types: value strings, TRANSFORMATION, routing."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import attrs

from rochallor_validator._errors import (
    DecisionNoBranchMatched,
    ExpressionError,
    TransformationError,
)
from rochallor_validator._expression import CompiledExpression, compile_expression, to_stored_value
from rochallor_validator._model import ConditionalNextStep, TransformationStep

NOW_FORM = "now()"


def is_expression_string(value: Any) -> bool:
    """A JSON string starting with ``${`` and ending with ``}`` (no trimming) is an expression."""
    return isinstance(value, str) and len(value) >= 3 and value[:2] == "${" and value[-1] == "}"


def format_now(now: datetime) -> str:
    """RFC 3339, second precision, ``Z`` suffix (value of ``${now()}``)."""
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@attrs.frozen
class ValueTemplate:
    """A TRANSFORMATION value, decision-table output entry or ``defaultValue``.

    Either a literal (assigned as written), an expression string ``"${...}"`` or ``"${now()}"``.
    """

    literal: Any = attrs.field(default=None, hash=False)
    expression: CompiledExpression | None = None
    is_now: bool = False

    def evaluate(self, variables: Mapping[str, Any], now: datetime | None = None) -> Any:
        """The value to store (the integral-float storage rule applied)."""
        if self.is_now:
            return format_now(now or datetime.now(UTC))
        if self.expression is not None:
            return to_stored_value(self.expression.evaluate(variables))
        return self.literal


def compile_value(value: Any) -> ValueTemplate:
    """Compile a value; raises ``ExpressionSyntaxError`` for a bad ``"${...}"`` string."""
    if not is_expression_string(value):
        return ValueTemplate(literal=value)
    inner = value[2:-1].strip()
    if inner == NOW_FORM:
        return ValueTemplate(is_now=True)
    return ValueTemplate(expression=compile_expression(inner))


def evaluate_transformation(
    step: TransformationStep, variables: Mapping[str, Any], *, now: datetime | None = None
) -> dict[str, Any]:
    """Evaluate a TRANSFORMATION step; returns the assignments to shallow-merge.

    Entries run in written order and each sees the assignments of the earlier ones
    (semantics.md section 7.4). Any failure raises :class:`TransformationError` and nothing is
    assigned.
    """
    working = dict(variables)
    out: dict[str, Any] = {}
    for entry in step.transformations or ():
        try:
            value = compile_value(entry.value).evaluate(working, now)
        except ExpressionError as exc:
            raise TransformationError(entry.variable, exc) from exc
        working[entry.variable] = value
        out[entry.variable] = value
    return out


def select_branch(branches: Sequence[ConditionalNextStep], variables: Mapping[str, Any]) -> str:
    """First branch (in written order) whose condition is ``true``; its target step id.

    Raises ``ExpressionEvaluationError`` (including ``NonBooleanResult``) or
    :class:`DecisionNoBranchMatched`; later conditions are not evaluated.
    """
    for branch in branches:
        if compile_expression(branch.condition).evaluate_bool(variables):
            return branch.target
    raise DecisionNoBranchMatched()
