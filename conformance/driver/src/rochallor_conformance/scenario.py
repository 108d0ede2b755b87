"""Scenario files: loading, validating their shape, and making their names unique per run.

Every definition id, job type and business key a scenario names is suffixed with
``--<scenario>-<run>`` before it reaches the engine, so that scenarios run in parallel, runs
repeat against the same engine, and leftovers of earlier runs never interfere.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

from rochallor_conformance.errors import ScenarioFormatError

#: Actions a scenario may perform, with the keys each accepts.
ACTIONS: dict[str, frozenset[str]] = {
    "start": frozenset(
        {"as", "definitionId", "variables", "businessKey", "version", "expectError"}
    ),
    "upload": frozenset({"definition", "fixture", "raw", "expectVersion", "expectError"}),
    "expect": frozenset({"instance", "find", "as", "timeout"}),
    "completeUserTask": frozenset({"instance", "stepId", "variables", "expectError"}),
    "signal": frozenset({"instance", "stepId", "body", "expectError"}),
    "cancel": frozenset({"instance", "reason", "expectError", "expectFailureReason"}),
    "sleep": frozenset({"seconds"}),
    "list": frozenset({"filter", "expectInstances", "timeout"}),
    "claimJob": frozenset(
        {"jobType", "as", "workerId", "sameAs", "expectVariables", "expectRetriesRemaining"}
    ),
    "noJob": frozenset({"jobType", "workerId"}),
    "completeJob": frozenset({"job", "jobId", "workerId", "variables", "expectError"}),
    "failJob": frozenset({"job", "jobId", "workerId", "retryable", "errorMessage", "expectError"}),
}

#: Keys of an ``expect`` action that describe the instance (see ``checks.py``).
EXPECTATIONS = frozenset(
    {
        "status",
        "failureReason",
        "variables",
        "exactVariables",
        "allVariables",
        "absentVariables",
        "currentStepIds",
        "businessKey",
        "definitionId",
        "definitionVersion",
        "history",
        "historyUnordered",
        "historyCount",
        "historyReasons",
        "audit",
        "auditCount",
    }
)

BEHAVIOUR_ACTIONS = frozenset({"complete", "fail", "abandon"})
BEHAVIOUR_KEYS = frozenset(
    {
        "action",
        "variables",
        "retryable",
        "errorMessage",
        "delaySeconds",
        "delayLeases",
        "extendLease",
    }
)

DEFAULT_TIMEOUT = 30.0


@attrs.frozen
class Scenario:
    """One runnable scenario (already renamed for its run)."""

    name: str
    description: str
    covers: tuple[str, ...]
    definitions: tuple[dict[str, Any], ...]
    workers: dict[str, list[dict[str, Any]]]
    actions: tuple[dict[str, Any], ...]
    timeout: float
    source: str
    group: str = "scenarios"


def _fail(source: str, message: str) -> ScenarioFormatError:
    return ScenarioFormatError(f"{source}: {message}")


def check_behaviour(source: str, job_type: str, behaviour: Any) -> None:
    where = f"workers[{job_type!r}]"
    if not isinstance(behaviour, dict):
        raise _fail(source, f"{where}: each behaviour must be an object")
    unknown = set(behaviour) - BEHAVIOUR_KEYS
    if unknown:
        raise _fail(source, f"{where}: unknown keys {sorted(unknown)}")
    if behaviour.get("action") not in BEHAVIOUR_ACTIONS:
        raise _fail(source, f"{where}: action must be one of {sorted(BEHAVIOUR_ACTIONS)}")


def check_action(source: str, index: int, action: Any) -> None:
    where = f"steps[{index}]"
    if not isinstance(action, dict) or not isinstance(action.get("do"), str):
        raise _fail(source, f"{where}: each step must be an object with a 'do' string")
    kind = action["do"]
    if kind not in ACTIONS:
        raise _fail(source, f"{where}: unknown action {kind!r} (one of {sorted(ACTIONS)})")
    allowed = ACTIONS[kind] | {"do", "comment"}
    if kind == "expect":
        allowed |= EXPECTATIONS
    unknown = set(action) - allowed
    if unknown:
        raise _fail(source, f"{where} ({kind}): unknown keys {sorted(unknown)}")


class Renamer:
    """Makes the names of one scenario unique for one run."""

    def __init__(self, scenario: str, run: str) -> None:
        self.suffix = f"--{scenario}-{run}"

    def name(self, value: str) -> str:
        return value + self.suffix

    def optional(self, value: Any) -> Any:
        return self.name(value) if isinstance(value, str) and value else value

    def definition(self, definition: Mapping[str, Any]) -> dict[str, Any]:
        result = copy.deepcopy(dict(definition))
        if isinstance(result.get("id"), str):
            result["id"] = self.name(result["id"])
        if isinstance(result.get("nextWorkflowId"), str) and result["nextWorkflowId"]:
            result["nextWorkflowId"] = self.name(result["nextWorkflowId"])
        for step in result.get("steps") or []:
            if isinstance(step, dict) and isinstance(step.get("jobType"), str):
                step["jobType"] = self.name(step["jobType"])
        return result

    def action(
        self, action: Mapping[str, Any], load_fixture: Callable[[str], Any]
    ) -> dict[str, Any]:
        result = copy.deepcopy(dict(action))
        for key in ("definitionId", "jobType", "businessKey"):
            if key in result:
                result[key] = self.optional(result[key])
        if result.get("do") == "upload":
            if "fixture" in result:
                result["definition"] = load_fixture(result.pop("fixture"))
            result["definition"] = self.definition(result["definition"])
        for key in ("find", "filter"):
            if isinstance(result.get(key), dict):
                inner = dict(result[key])
                for name in ("definitionId", "businessKey"):
                    if name in inner:
                        inner[name] = self.optional(inner[name])
                result[key] = inner
        return result


def load_scenario(path: Path, run: str, fixtures: Path) -> Scenario:
    """Read one scenario file and rename it for ``run``."""
    source = path.name
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise _fail(source, f"not valid JSON: {exc}") from exc
    return build_scenario(raw, path.stem, run, fixtures, source=source)


def build_scenario(
    raw: Any, name: str, run: str, fixtures: Path, *, source: str, group: str = "scenarios"
) -> Scenario:
    if not isinstance(raw, dict):
        raise _fail(source, "a scenario is a JSON object")
    known = {
        "description",
        "covers",
        "definitions",
        "definitionFixtures",
        "workers",
        "steps",
        "timeout",
        "comment",
    }
    unknown = set(raw) - known
    if unknown:
        raise _fail(source, f"unknown top-level keys {sorted(unknown)}")
    steps = raw.get("steps")
    if not isinstance(steps, list) or not steps:
        raise _fail(source, "'steps' must be a non-empty array")
    for index, action in enumerate(steps):
        check_action(source, index, action)
    workers = raw.get("workers") or {}
    if not isinstance(workers, dict):
        raise _fail(source, "'workers' must be an object: job type -> behaviours")
    for job_type, behaviours in workers.items():
        if not isinstance(behaviours, list) or not behaviours:
            raise _fail(source, f"workers[{job_type!r}] must be a non-empty array")
        for behaviour in behaviours:
            check_behaviour(source, job_type, behaviour)

    def load_fixture(fixture: str) -> Any:
        fixture_path = fixtures / f"{fixture}.json"
        if not fixture_path.is_file():
            raise _fail(source, f"no definition fixture {fixture!r} in {fixtures}")
        return json.loads(fixture_path.read_text(encoding="utf-8"))

    renamer = Renamer(name, run)
    definitions = [load_fixture(f) for f in raw.get("definitionFixtures") or []]
    definitions += list(raw.get("definitions") or [])
    return Scenario(
        name=name,
        description=str(raw.get("description", "")),
        covers=tuple(str(c) for c in raw.get("covers") or ()),
        definitions=tuple(renamer.definition(d) for d in definitions),
        workers={
            renamer.name(job_type): copy.deepcopy(behaviours)
            for job_type, behaviours in workers.items()
        },
        actions=tuple(renamer.action(a, load_fixture) for a in steps),
        timeout=float(raw.get("timeout", DEFAULT_TIMEOUT)),
        source=source,
        group=group,
    )


def worker_script(scenarios: Iterable[Scenario]) -> dict[str, Any]:
    """The behaviour script handed to the worker: every job type of every scenario."""
    job_types: dict[str, Any] = {}
    for scenario in scenarios:
        for job_type, behaviours in scenario.workers.items():
            job_types[job_type] = {"attempts": behaviours}
    return {"version": 1, "jobTypes": job_types}
