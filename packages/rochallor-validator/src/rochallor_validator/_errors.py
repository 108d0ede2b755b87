"""Exceptions of the package and the validation issue record.

Every exception raised on purpose by this package derives from :class:`ValidatorError`.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

#: Issue codes produced while decoding the JSON document (rules P1-P3 of workflow-format.md).
#: A definition rejected with one of these is reported as ``parse error: ...`` to clients.
PARSE_CODES = frozenset({"PARSE_ERROR", "UNKNOWN_FIELD", "INVALID_TYPE"})


@attrs.frozen(kw_only=True)
class ValidationIssue:
    """One violation (or warning) found in a workflow definition."""

    code: str
    path: str
    message: str
    severity: str = "error"
    step_id: str | None = None
    #: For an expression syntax error: the character offset of the error in the text as
    #: written in the document (the condition key, the ``"${…}"`` string, the table entry).
    position: int | None = None

    @property
    def is_parse_error(self) -> bool:
        """True for issues of the JSON decoding stage (``parse error`` on the wire)."""
        return self.code in PARSE_CODES

    def to_json(self) -> dict[str, str]:
        return {"code": self.code, "path": self.path, "message": self.message}


def summarize_issues(issues: Sequence[ValidationIssue]) -> str:
    """Server-facing summary text (``reason`` of the REST error body).

    ``parse error: <message>`` when decoding failed, otherwise ``validation error: `` followed
    by every message on its own indented line (workflow-format.md section 4, rest-api.md 5.1).
    """
    errors = [i for i in issues if i.severity == "error"]
    if not errors:
        return ""
    if any(i.is_parse_error for i in errors):
        return "parse error: " + "; ".join(f"{i.path}: {i.message}" for i in errors)
    return "validation error: " + "".join(f"\n  {i.message}" for i in errors)


class ValidatorError(Exception):
    """Workflow validator error."""

    def __init__(self, message: str | None = None) -> None:
        self.message = message or (self.__doc__ or "").strip()
        super().__init__(self.message)


class DefinitionInvalid(ValidatorError):
    """The workflow definition is invalid."""

    def __init__(self, issues: Sequence[ValidationIssue]) -> None:
        self.issues: list[ValidationIssue] = list(issues)
        super().__init__(summarize_issues(self.issues) or None)

    @property
    def is_parse_error(self) -> bool:
        return any(i.is_parse_error for i in self.issues)


class DurationError(ValidatorError):
    """Invalid ISO-8601 duration."""

    def __init__(self, text: str) -> None:
        self.text = text
        super().__init__(f"invalid ISO-8601 duration {text!r}")


class ExpressionError(ValidatorError):
    """Expression error."""


class ExpressionSyntaxError(ExpressionError):
    """Expression syntax error."""

    def __init__(self, source: str, detail: str, position: int) -> None:
        self.source = source
        self.detail = detail
        self.position = position
        super().__init__(f"expression {source!r}: syntax error at offset {position}: {detail}")


class ExpressionLimitError(ExpressionSyntaxError):
    """Expression too long or nested too deeply (limits of ``docs/validator.md``).

    ``limit`` names the limit: ``length``, ``nesting`` or ``depth``; ``position`` is the offset
    at which it was exceeded. A subclass of :class:`ExpressionSyntaxError`, so every caller
    that handles a syntax error handles this one too.
    """

    def __init__(self, source: str, detail: str, position: int, limit: str) -> None:
        self.limit = limit
        shown = source if len(source) <= 80 else source[:77] + "..."
        super().__init__(shown, detail, position)
        self.source = source


class ExpressionEvaluationError(ExpressionError):
    """Expression evaluation error.

    ``detail`` is the bare cause (e.g. ``undefined variable "x"``); ``str()`` gives the spec's
    ``expression "<expr>": <detail>`` form.
    """

    def __init__(self, detail: str, source: str | None = None) -> None:
        self.detail = detail
        self.source = source
        super().__init__(detail if source is None else f'expression "{source}": {detail}')


class NonBooleanResult(ExpressionEvaluationError):
    """Expression in boolean context did not yield a boolean."""

    def __init__(self, source: str, type_name: str) -> None:
        self.type_name = type_name
        # Spec reason, without the "eval error" prefix:
        # expression "<expr>": result is <type>, not bool
        super().__init__(f"result is {type_name}, not bool", source)


class DecisionNoBranchMatched(ValidatorError):
    """no conditionalNextSteps branch matched (DecisionNoBranchMatched)"""


class TransformationError(ValidatorError):
    """A TRANSFORMATION entry failed to evaluate."""

    def __init__(self, key: str, cause: ExpressionError) -> None:
        self.key = key
        self.cause = cause
        super().__init__(f'transformation "{key}": expression eval: {cause}')


class DecisionTableError(ValidatorError):
    """Decision table evaluation failed.

    ``kind`` is one of ``DecisionTableNoRuleMatched``, ``DecisionTableUniqueViolation``,
    ``DecisionTableAnyConflict``, ``DecisionTableEvalError``; ``str()`` is the failure reason of
    decision-table.md section 6.
    """

    def __init__(
        self, kind: str, step_id: str, detail: str = "", rule_ids: Sequence[str] = ()
    ) -> None:
        self.kind = kind
        self.step_id = step_id
        self.detail = detail
        self.rule_ids = tuple(rule_ids)
        text = f'{kind}: step "{step_id}"'
        if detail:
            text += f": {detail}"
        super().__init__(text)
