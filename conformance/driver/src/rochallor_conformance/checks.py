"""Comparing what the engine shows with what a scenario expects. Pure functions."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

TERMINAL = frozenset({"COMPLETED", "FAILED", "CANCELLED"})

#: Keys every history item carries (rest-api.md 3.7), ``endedAt``/``failureReason`` as null.
HISTORY_KEYS = frozenset(
    {
        "id",
        "instanceId",
        "stepId",
        "stepType",
        "attemptNumber",
        "status",
        "startedAt",
        "endedAt",
        "failureReason",
    }
)
#: Keys every instance carries (rest-api.md 3.3).
INSTANCE_KEYS = frozenset(
    {
        "id",
        "definitionId",
        "definitionVersion",
        "status",
        "currentStepIds",
        "variables",
        "startedAt",
    }
)


def json_equal(a: Any, b: Any, *, exact: bool = False) -> bool:
    """JSON equality: numbers by value (``1 == 1.0``), booleans never equal numbers.

    ``exact`` also tells integers from fractions on the wire: ``2`` is not ``2.0``.
    """
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        if exact and isinstance(a, int) != isinstance(b, int):
            return False
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k], exact=exact) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(
            json_equal(x, y, exact=exact) for x, y in zip(a, b, strict=True)
        )
    return type(a) is type(b) and a == b


def history_items(history: Iterable[Mapping[str, Any]]) -> list[str]:
    """``stepId:STATUS`` for each history entry, in the engine's order."""
    return [f"{item.get('stepId')}:{item.get('status')}" for item in history]


def _entry_matches(expected: str, actual: str) -> bool:
    # "step" matches any status, "step:STATUS" only that one
    return actual == expected if ":" in expected else actual.split(":", 1)[0] == expected


def check_instance(
    instance: Mapping[str, Any],
    history: Sequence[Mapping[str, Any]],
    expected: Mapping[str, Any],
) -> list[str]:
    """Every difference between the instance (and its history) and the expectations."""
    problems: list[str] = []
    status = instance.get("status")
    if "status" in expected and status != expected["status"]:
        problems.append(f"status is {status!r}, expected {expected['status']!r}")
    if "failureReason" in expected:
        pattern = expected["failureReason"]
        reason = instance.get("failureReason")
        if pattern is None:
            if reason:
                problems.append(f"failureReason is {reason!r}, expected none")
        elif not re.search(pattern, reason if isinstance(reason, str) else ""):
            # an absent reason reads as "" (gRPC cannot tell an empty string from none)
            problems.append(f"failureReason {reason!r} does not match /{pattern}/")
    variables = instance.get("variables") or {}
    for name, value in (expected.get("variables") or {}).items():
        if name not in variables:
            problems.append(f"variable {name!r} missing, expected {value!r}")
        elif not json_equal(variables[name], value):
            problems.append(f"variable {name!r} is {variables[name]!r}, expected {value!r}")
    for name, value in (expected.get("exactVariables") or {}).items():
        if name not in variables:
            problems.append(f"variable {name!r} missing, expected {value!r}")
        elif not json_equal(variables[name], value, exact=True):
            problems.append(f"variable {name!r} is {variables[name]!r}, expected exactly {value!r}")
    if "allVariables" in expected and not json_equal(
        variables, expected["allVariables"], exact=True
    ):
        problems.append(
            f"variables are {variables!r}, expected exactly {expected['allVariables']!r}"
        )
    problems.extend(
        f"variable {name!r} is {variables[name]!r}, expected absent"
        for name in expected.get("absentVariables") or ()
        if name in variables
    )
    if "currentStepIds" in expected:
        current = list(instance.get("currentStepIds") or [])
        if sorted(current) != sorted(expected["currentStepIds"]):
            problems.append(f"currentStepIds is {current}, expected {expected['currentStepIds']}")
    problems.extend(
        f"{key} is {instance.get(key)!r}, expected {expected[key]!r}"
        for key in ("businessKey", "definitionId", "definitionVersion")
        if key in expected and instance.get(key) != expected[key]
    )
    items = history_items(history)
    if "history" in expected:
        wanted = list(expected["history"])
        if len(wanted) != len(items) or not all(
            _entry_matches(w, a) for w, a in zip(wanted, items, strict=False)
        ):
            problems.append(f"history is {items}, expected {wanted}")
    if "historyUnordered" in expected and Counter(items) != Counter(expected["historyUnordered"]):
        problems.append(
            f"history is {sorted(items)}, expected (any order) "
            f"{sorted(expected['historyUnordered'])}"
        )
    for step_id, count in (expected.get("historyCount") or {}).items():
        seen = sum(1 for item in history if item.get("stepId") == step_id)
        if seen != count:
            problems.append(f"history has {seen} executions of {step_id!r}, expected {count}")
    for step_id, pattern in (expected.get("historyReasons") or {}).items():
        reasons = [item.get("failureReason") for item in history if item.get("stepId") == step_id]
        if not any(isinstance(r, str) and re.search(pattern, r) for r in reasons):
            problems.append(
                f"no execution of {step_id!r} has a reason matching /{pattern}/: {reasons}"
            )
    return problems


def check_invariants(
    instance: Mapping[str, Any],
    history: Sequence[Mapping[str, Any]],
    step_types: Mapping[str, str] | None,
) -> list[str]:
    """Invariants of ``semantics.md`` §21 that hold for every instance, checked when terminal.

    ``step_types`` maps each step id of the instance's definition (every uploaded version) to
    its type; ``None`` when the definition is not one the scenario uploaded.
    """
    problems: list[str] = []
    status = instance.get("status")
    if status not in TERMINAL:
        return problems
    if status == "COMPLETED" and instance.get("currentStepIds"):
        problems.append(f"I2: COMPLETED with currentStepIds {instance.get('currentStepIds')}")
    if status == "FAILED" and not instance.get("failureReason"):
        problems.append("I7: FAILED without a failureReason")
    if not instance.get("completedAt"):
        problems.append(f"{status} without completedAt")
    missing = sorted(INSTANCE_KEYS - instance.keys())
    if missing:
        problems.append(f"instance lacks {missing}")
    attempts: dict[str, int] = {}
    for item in history:
        missing = sorted(HISTORY_KEYS - item.keys())
        if missing:
            problems.append(f"history item of {item.get('stepId')!r} lacks {missing}")
        step = str(item.get("stepId"))
        attempts[step] = attempts.get(step, 0) + 1
        if item.get("attemptNumber") != attempts[step]:
            problems.append(
                f"execution {attempts[step]} of {step!r} has attemptNumber "
                f"{item.get('attemptNumber')!r}"
            )
        if item.get("status") != "RUNNING" and not item.get("endedAt"):
            problems.append(f"{item.get('status')} execution of {step!r} has no endedAt")
        if item.get("status") == "RUNNING":
            problems.append(
                f"I9: execution of {item.get('stepId')!r} still RUNNING in a {status} instance"
            )
        if item.get("status") not in ("COMPLETED", "FAILED", "SKIPPED", "RUNNING"):
            problems.append(f"I4: unknown execution status {item.get('status')!r}")
        if step_types is not None:
            step_id = str(item.get("stepId"))
            if step_id not in step_types:
                problems.append(f"I3: history names {step_id!r}, not a step of the definition")
            elif item.get("stepType") != step_types[step_id]:
                problems.append(
                    f"execution of {step_id!r} has stepType {item.get('stepType')!r}, "
                    f"the definition says {step_types[step_id]!r}"
                )
    return problems


def subset_problems(actual: Mapping[str, Any], expected: Mapping[str, Any], what: str) -> list[str]:
    problems = []
    for name, value in expected.items():
        if name not in actual:
            problems.append(f"{what}: {name!r} missing, expected {value!r}")
        elif not json_equal(actual[name], value):
            problems.append(f"{what}: {name!r} is {actual[name]!r}, expected {value!r}")
    return problems


def check_audit(entries: Sequence[Mapping[str, Any]], expected: Mapping[str, Any]) -> list[str]:
    """``audit``: these kinds appear in this order (other entries may come between);
    ``auditCount``: kind -> exact number of entries."""
    problems: list[str] = []
    kinds = [str(entry.get("kind")) for entry in entries]
    wanted = list(expected.get("audit") or [])
    position = 0
    for kind in kinds:
        if position < len(wanted) and kind == wanted[position]:
            position += 1
    if position < len(wanted):
        problems.append(f"audit log is {kinds}, expected {wanted} in this order")
    for kind, count in (expected.get("auditCount") or {}).items():
        seen = kinds.count(kind)
        if seen != count:
            problems.append(f"audit log has {seen} {kind!r} entries, expected {count}")
    return problems
