"""JSON decoding of a definition and the public parse/validate entry points."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final

import attrs
import cattrs
from cattrs.errors import ForbiddenExtraKeysError, IterableValidationError

from rochallor_validator import _rules
from rochallor_validator._errors import DefinitionInvalid, ValidationIssue
from rochallor_validator._limits import (
    MAX_DOCUMENT_DEPTH,
    MAX_INT,
    MIN_INT,
)
from rochallor_validator._model import CONVERTER, WireError, WorkflowDefinition, to_camel

_PLAIN_KEY_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_STEP_PATH_RE: Final = re.compile(r"\$\.steps\[(\d+)\]")


def format_path(segments: Sequence[str | int]) -> str:
    """``("steps", 3, "nextStep")`` -> ``$.steps[3].nextStep`` (JSONPath-like)."""
    out = ["$"]
    for seg in segments:
        if isinstance(seg, int):
            out.append(f"[{seg}]")
        elif _PLAIN_KEY_RE.fullmatch(seg):
            out.append(f".{seg}")
        else:
            out.append("[" + json.dumps(seg, ensure_ascii=False) + "]")
    return "".join(out)


def _walk(exc: BaseException, segments: tuple[str | int, ...]) -> Iterator[ValidationIssue]:
    """Turn a cattrs exception tree into issues carrying JSON paths."""
    if isinstance(exc, WireError):
        yield ValidationIssue(
            code=exc.code, path=format_path(segments + exc.segments), message=exc.message
        )
    elif isinstance(exc, ForbiddenExtraKeysError):
        for key in sorted(exc.extra_fields):
            yield ValidationIssue(
                code="UNKNOWN_FIELD",
                path=format_path((*segments, key)),
                message=f"unknown field {key!r}",
            )
    elif isinstance(exc, cattrs.ClassValidationError):
        with_notes, rest = exc.group_exceptions()
        for sub, note in with_notes:
            yield from _walk(sub, (*segments, to_camel(note.name)))
        for other in rest:
            yield from _walk(other, segments)
    elif isinstance(exc, IterableValidationError):
        with_index, remaining = exc.group_exceptions()
        for indexed, inote in with_index:
            yield from _walk(indexed, (*segments, inote.index))
        for leftover in remaining:
            yield from _walk(leftover, segments)
    elif isinstance(exc, BaseExceptionGroup):
        for member in exc.exceptions:
            yield from _walk(member, segments)
    else:  # pragma: no cover - defensive: every hook raises WireError or a cattrs error
        yield ValidationIssue(code="INVALID_TYPE", path=format_path(segments), message=str(exc))


def load_document(data: str | bytes | Mapping[str, Any]) -> tuple[Any, list[ValidationIssue]]:
    """Decode JSON text (rule P1). Duplicate keys: the last occurrence wins (rule P6)."""
    if isinstance(data, Mapping):
        return data, []
    try:
        doc = json.loads(data)
    except (ValueError, TypeError) as exc:
        return None, [
            ValidationIssue(code="PARSE_ERROR", path="$", message=f"malformed JSON: {exc}")
        ]
    except RecursionError:
        return None, [
            ValidationIssue(
                code="PARSE_ERROR",
                path="$",
                message="malformed JSON: arrays and objects nested too deeply",
            )
        ]
    if not isinstance(doc, dict):
        return None, [
            ValidationIssue(
                code="PARSE_ERROR", path="$", message="definition must be a JSON object"
            )
        ]
    return doc, []


#: At most this many ``NUMBER_RANGE`` (and as many ``NUL_CHARACTER``) issues are listed.
_MAX_NUMBER_ISSUES: Final = 20


def _number_problem(value: int | float) -> str | None:
    """Why a JSON number cannot be stored and read back exactly, or None."""
    if isinstance(value, int):
        if MIN_INT <= value <= MAX_INT:
            return None
        return "integer outside the signed 64-bit range"
    if not math.isfinite(value):
        return "number is not finite"
    return None


def limit_issues(raw: Any) -> list[ValidationIssue]:
    """``NESTING_DEPTH``, ``NUMBER_RANGE`` and ``NUL_CHARACTER`` issues of a decoded document.

    Iterative, so a document of any depth is walked without exhausting the stack. The integer
    ``version`` and the ``retryCount`` of a SERVICE_TASK are left to their own rules
    (``VERSION_RANGE``, ``RETRY_COUNT_RANGE``).
    """
    own_rule: set[tuple[str | int, ...]] = {("version",)}
    steps = raw.get("steps") if isinstance(raw, Mapping) else None
    if isinstance(steps, list):
        own_rule.update(
            ("steps", i, "retryCount")
            for i, step in enumerate(steps)
            if isinstance(step, Mapping) and step.get("type") == "SERVICE_TASK"
        )
    issues: list[ValidationIssue] = []
    numbers = 0
    nuls = 0
    deep_reported = False

    def nul(segments: tuple[str | int, ...], what: str) -> None:
        nonlocal nuls
        nuls += 1
        if nuls <= _MAX_NUMBER_ISSUES:
            path = format_path(segments)
            issues.append(
                ValidationIssue(
                    code="NUL_CHARACTER",
                    path=path,
                    message=f"{path}: {what} contains a NUL character (U+0000), which cannot "
                    "be stored",
                )
            )

    stack: list[tuple[Any, tuple[str | int, ...]]] = [(raw, ())]
    while stack:
        value, segments = stack.pop()
        if isinstance(value, Mapping | list):
            if len(segments) >= MAX_DOCUMENT_DEPTH:
                if not deep_reported:
                    deep_reported = True
                    issues.append(
                        ValidationIssue(
                            code="NESTING_DEPTH",
                            path=format_path(segments),
                            message=f"arrays and objects are nested deeper than "
                            f"{MAX_DOCUMENT_DEPTH} levels",
                        )
                    )
                continue
            items = list(value.items() if isinstance(value, Mapping) else enumerate(value))
            for key, _ in items:
                if isinstance(key, str) and "\x00" in key:
                    nul((*segments, key), "the key")
            stack.extend(
                (item, (*segments, key if isinstance(key, str | int) else str(key)))
                for key, item in reversed(items)
            )
        elif isinstance(value, str):
            if "\x00" in value:
                nul(segments, "the string")
        elif isinstance(value, int | float) and not isinstance(value, bool):
            problem = _number_problem(value)
            if problem is None:
                continue
            if isinstance(value, int) and segments in own_rule:
                continue
            path = format_path(segments)
            numbers += 1
            if numbers <= _MAX_NUMBER_ISSUES:
                issues.append(
                    ValidationIssue(
                        code="NUMBER_RANGE",
                        path=path,
                        message=f"{path}: {problem}; numbers must be integers from -2^63 to "
                        "2^63-1 or finite numbers",
                    )
                )
    return issues


def decode(raw: Any) -> tuple[WorkflowDefinition | None, list[ValidationIssue]]:
    """Structure a JSON object into the model; issues for unknown fields and wrong types."""
    if not isinstance(raw, Mapping):
        return None, [
            ValidationIssue(
                code="PARSE_ERROR", path="$", message="definition must be a JSON object"
            )
        ]
    try:
        return CONVERTER.structure(dict(raw), WorkflowDefinition), []
    except (cattrs.BaseValidationError, WireError) as exc:
        return None, list(_walk(exc, ()))


@attrs.frozen(kw_only=True)
class ValidationReport:
    """Everything the validator found: errors, warnings and, when decodable, the model."""

    definition: WorkflowDefinition | None
    errors: list[ValidationIssue]
    warnings: list[ValidationIssue]

    @property
    def accepted(self) -> bool:
        return not self.errors


def _with_step_ids(issues: list[ValidationIssue], raw: Any) -> list[ValidationIssue]:
    steps = raw.get("steps") if isinstance(raw, Mapping) else None
    if not isinstance(steps, list):
        return issues
    out = []
    for issue in issues:
        m = _STEP_PATH_RE.match(issue.path)
        if m is not None and issue.step_id is None:
            step = steps[int(m.group(1))]
            step_id = step.get("id") if isinstance(step, Mapping) else None
            if isinstance(step_id, str) and step_id.strip():
                issue = attrs.evolve(issue, step_id=step_id)
        out.append(issue)
    return out


def check_definition(
    data: str | bytes | Mapping[str, Any], *, limits: bool = True
) -> ValidationReport:
    """Decode and validate; never raises for bad input (only for programming errors).

    ``limits=False`` leaves out the limits of ``docs/validator.md`` section 7 (codes
    ``LIMIT_CODES`` and the upper bound of ``retryCount``). It exists only to read back a
    definition stored before a limit was introduced; every upload must use the default.

    Decoding problems (``PARSE_ERROR``, ``UNKNOWN_FIELD``, ``INVALID_TYPE``,
    ``STEP_TYPE_VALID``) are all reported together; the semantic rules run only on a document
    that decoded, so their issues are reported on the next upload attempt.
    """
    raw, issues = load_document(data)
    if issues:
        return ValidationReport(definition=None, errors=issues, warnings=[])
    past_limits = limit_issues(raw) if limits else []
    definition, issues = decode(raw)
    if definition is None:
        return ValidationReport(
            definition=None, errors=_with_step_ids(issues + past_limits, raw), warnings=[]
        )
    found = _with_step_ids(past_limits + _rules.run_rules(definition, limits=limits), raw)
    return ValidationReport(
        definition=definition,
        errors=[i for i in found if i.severity == "error"],
        warnings=[i for i in found if i.severity == "warning"],
    )


def validate_definition(data: str | bytes | Mapping[str, Any]) -> list[ValidationIssue]:
    """All errors of the definition (warnings excluded); an empty list means valid."""
    return check_definition(data).errors


def parse_definition(
    data: str | bytes | Mapping[str, Any], *, limits: bool = True
) -> WorkflowDefinition:
    """Decode and validate; raises :class:`DefinitionInvalid` listing every error.

    ``limits``: as for :func:`check_definition`.
    """
    report = check_definition(data, limits=limits)
    if report.errors or report.definition is None:
        raise DefinitionInvalid(report.errors)
    return report.definition


def definition_to_json(definition: WorkflowDefinition) -> dict[str, Any]:
    """The wire form (camelCase keys, absent optional fields omitted)."""
    out: dict[str, Any] = CONVERTER.unstructure(definition)
    return out
