"""Running one scenario against an engine: perform its steps, check its expectations."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import attrs

from rochallor_conformance.checks import (
    TERMINAL,
    check_audit,
    check_instance,
    check_invariants,
    subset_problems,
)
from rochallor_conformance.engine import KINDS, AuditReader, Engine, EngineError
from rochallor_conformance.errors import CheckFailed, ConformanceError
from rochallor_conformance.scenario import EXPECTATIONS, Scenario

POLL_INTERVAL = 0.2
DRIVER_WORKER = "conformance-driver"


@attrs.frozen
class Result:
    name: str
    group: str
    passed: bool
    seconds: float
    message: str = ""


#: Codes of documents that cannot be decoded at all (``workflow-format.md``, rules P1-P3).
DECODING_CODES = frozenset({"PARSE_ERROR", "UNKNOWN_FIELD", "INVALID_TYPE"})
#: Document-wide input limits an engine may enforce while reading the request, before
#: validation, answering 400 with a plain reason and no ``details`` (docs/limits.md).
REQUEST_LIMIT_CODES = frozenset({"NUMBER_RANGE", "NESTING_DEPTH", "NUL_CHARACTER"})


def error_matches(error: EngineError, expected: str) -> bool:
    """``expected`` is an error kind (``not_found``…) or a validation code (``REF_RESOLVES``).

    A code needs a ``bad_request`` naming it in the REST ``details``. Decoding errors carry
    none (their reason starts with ``parse error``), nor do the document-wide input limits an
    engine checks while reading the request. gRPC statuses name no codes, so there the kind
    alone is checked.
    """
    if expected in KINDS:
        return error.kind == expected
    if error.kind != "bad_request":
        return False
    if not error.codes:
        return True  # grpc-contract.md: INVALID_ARGUMENT, the message is free text
    if expected in DECODING_CODES and error.text.startswith("parse error"):
        return True  # rest-api.md 5.1: decoding errors carry no details
    body = error.body
    has_details = isinstance(body, dict) and bool(body.get("details"))
    if expected in REQUEST_LIMIT_CODES and not has_details:
        return True  # refused while reading the request, before validation
    if isinstance(body, dict):
        codes = [d.get("code") for d in body.get("details") or [] if isinstance(d, dict)]
        if expected in codes:
            return True
    return re.search(rf"\b{re.escape(expected)}\b", error.text + json.dumps(body)) is not None


class _Run:
    def __init__(
        self, engine: Engine, scenario: Scenario, scale: float, audit: AuditReader | None
    ) -> None:
        self.engine = engine
        self.audit = audit
        self.scenario = scenario
        self.scale = scale
        self.deadline = time.monotonic() + scenario.timeout * scale
        self.instances: dict[str, str] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        # step id -> type, per definition id, over every version uploaded by the scenario
        self.step_types: dict[str, dict[str, str]] = {}

    # --- helpers ------------------------------------------------------------------------

    def _remember(self, definition: Mapping[str, Any]) -> None:
        types = self.step_types.setdefault(str(definition.get("id")), {})
        for step in definition.get("steps") or []:
            if isinstance(step, dict) and "id" in step:
                types[str(step["id"])] = str(step.get("type"))

    def _instance(self, action: Mapping[str, Any]) -> str:
        name = str(action.get("instance", "main"))
        if name not in self.instances:
            raise ConformanceError(f"no instance named {name!r} (start or find it first)")
        return self.instances[name]

    def _job(self, action: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        if "jobId" in action:
            return str(action["jobId"]), {}
        name = str(action.get("job", "job"))
        if name not in self.jobs:
            raise ConformanceError(f"no job named {name!r} (claim it first)")
        return str(self.jobs[name]["id"]), self.jobs[name]

    def _step_deadline(self, action: Mapping[str, Any]) -> float:
        if "timeout" in action:
            return min(self.deadline, time.monotonic() + float(action["timeout"]) * self.scale)
        return self.deadline

    async def _expecting_error(
        self, action: Mapping[str, Any], call: Callable[[], Awaitable[Any]]
    ) -> Any:
        expected = action.get("expectError")
        try:
            result = await call()
        except EngineError as exc:
            if expected is None:
                raise CheckFailed(f"{action['do']}: engine answered {exc}") from exc
            if not error_matches(exc, str(expected)):
                raise CheckFailed(
                    f"{action['do']}: expected a {expected} error, engine answered {exc}"
                ) from exc
            return None
        if expected is not None:
            raise CheckFailed(f"{action['do']}: expected a {expected} error, the call succeeded")
        return result

    # --- actions ------------------------------------------------------------------------

    async def run(self) -> None:
        for definition in self.scenario.definitions:
            try:
                await self.engine.upload(definition)
            except EngineError as exc:
                raise CheckFailed(f"upload of {definition.get('id')!r} failed: {exc}") from exc
            self._remember(definition)
        for index, action in enumerate(self.scenario.actions):
            handler = getattr(self, f"do_{action['do']}")
            try:
                await handler(action)
            except CheckFailed as exc:
                raise CheckFailed(f"step {index + 1} ({action['do']}): {exc}") from exc
            except EngineError as exc:
                raise CheckFailed(f"step {index + 1} ({action['do']}): {exc}") from exc

    async def do_start(self, action: Mapping[str, Any]) -> None:
        instance = await self._expecting_error(
            action,
            lambda: self.engine.start(
                str(action["definitionId"]),
                action.get("variables"),
                business_key=action.get("businessKey"),
                version=action.get("version"),
            ),
        )
        if instance is not None:
            self.instances[str(action.get("as", "main"))] = str(instance["id"])

    async def do_upload(self, action: Mapping[str, Any]) -> None:
        definition = action["definition"]
        summary = await self._expecting_error(action, lambda: self.engine.upload(definition))
        if summary is None:
            return
        self._remember(definition)
        if "expectVersion" in action and summary.get("version") != action["expectVersion"]:
            raise CheckFailed(
                f"upload stored version {summary.get('version')!r}, "
                f"expected {action['expectVersion']!r}"
            )

    async def _find(self, action: Mapping[str, Any]) -> str | None:
        filters = dict(action["find"])
        items = await self.engine.list_instances(
            definition_id=filters.get("definitionId"),
            status=filters.get("status"),
            business_key=filters.get("businessKey"),
        )
        if len(items) > 1:
            raise CheckFailed(f"find {filters} matched {len(items)} instances, expected one")
        return str(items[0]["id"]) if items else None

    async def do_expect(self, action: Mapping[str, Any]) -> None:
        expected = {key: value for key, value in action.items() if key in EXPECTATIONS}
        deadline = self._step_deadline(action)
        problems: list[str] = ["instance not found"]
        while True:
            instance_id: str | None
            if "find" in action:
                instance_id = await self._find(action)
            else:
                instance_id = self._instance(action)
            if instance_id is not None:
                instance = await self.engine.get(instance_id)
                history = await self.engine.history(instance_id)
                problems = check_instance(instance, history, expected)
                if self.audit is not None and ("audit" in expected or "auditCount" in expected):
                    problems += check_audit(await self.audit.entries(instance_id), expected)
                terminal = instance.get("status") in TERMINAL
                if terminal:
                    problems += check_invariants(
                        instance,
                        history,
                        self.step_types.get(str(instance.get("definitionId"))),
                    )
                if not problems:
                    if "as" in action:
                        self.instances[str(action["as"])] = instance_id
                    return
                if terminal:
                    break  # terminal states are final; waiting longer cannot help
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(POLL_INTERVAL)
        raise CheckFailed("; ".join(problems))

    async def do_completeUserTask(self, action: Mapping[str, Any]) -> None:
        instance_id = self._instance(action)
        await self._expecting_error(
            action,
            lambda: self.engine.complete_user_task(
                instance_id, str(action["stepId"]), action.get("variables")
            ),
        )

    async def do_signal(self, action: Mapping[str, Any]) -> None:
        instance_id = self._instance(action)
        await self._expecting_error(
            action,
            lambda: self.engine.signal(instance_id, str(action["stepId"]), action.get("body")),
        )

    async def do_cancel(self, action: Mapping[str, Any]) -> None:
        instance_id = self._instance(action)
        result = await self._expecting_error(
            action, lambda: self.engine.cancel(instance_id, action.get("reason"))
        )
        if result is not None:
            if result.get("status") != "CANCELLED":
                raise CheckFailed(f"cancel answered status {result.get('status')!r}")
            if "reason" in action and (result.get("failureReason") or "") != action["reason"]:
                raise CheckFailed(
                    f"cancel answered failureReason {result.get('failureReason')!r}, "
                    f"expected {action['reason']!r}"
                )

    async def do_sleep(self, action: Mapping[str, Any]) -> None:
        await asyncio.sleep(float(action["seconds"]) * self.scale)

    async def do_list(self, action: Mapping[str, Any]) -> None:
        filters = dict(action.get("filter") or {})
        wanted = sorted(self.instances[str(name)] for name in action["expectInstances"])
        deadline = self._step_deadline(action)
        while True:
            items = await self.engine.list_instances(
                definition_id=filters.get("definitionId"),
                status=filters.get("status"),
                business_key=filters.get("businessKey"),
            )
            got = sorted(str(item["id"]) for item in items)
            if got == wanted:
                return
            if time.monotonic() > deadline:
                names = {v: k for k, v in self.instances.items()}
                raise CheckFailed(
                    f"listing {filters} gave {[names.get(i, i) for i in got]}, "
                    f"expected {sorted(action['expectInstances'])}"
                )
            await asyncio.sleep(POLL_INTERVAL)

    async def do_claimJob(self, action: Mapping[str, Any]) -> None:
        worker = str(action.get("workerId", DRIVER_WORKER))
        job_type = str(action["jobType"])
        while True:
            jobs = await self.engine.poll(worker, [job_type])
            if jobs:
                break
            if time.monotonic() > self.deadline:
                raise CheckFailed(f"no job of type {job_type!r} could be claimed")
            await asyncio.sleep(POLL_INTERVAL)
        job = jobs[0]
        problems = []
        if "sameAs" in action:
            other = self.jobs[str(action["sameAs"])]
            if job.get("id") != other.get("id"):
                problems.append(
                    f"claimed job {job.get('id')}, expected the same job as {action['sameAs']!r}"
                )
        if (
            "expectRetriesRemaining" in action
            and job.get("retriesRemaining") != action["expectRetriesRemaining"]
        ):
            problems.append(
                f"retriesRemaining is {job.get('retriesRemaining')!r}, "
                f"expected {action['expectRetriesRemaining']!r}"
            )
        problems += subset_problems(
            job.get("variables") or {}, action.get("expectVariables") or {}, "job variables"
        )
        if problems:
            raise CheckFailed("; ".join(problems))
        self.jobs[str(action.get("as", "job"))] = job

    async def do_noJob(self, action: Mapping[str, Any]) -> None:
        jobs = await self.engine.poll(
            str(action.get("workerId", DRIVER_WORKER)), [str(action["jobType"])]
        )
        if jobs:
            raise CheckFailed(
                f"a job of type {action['jobType']!r} was claimable: {jobs[0].get('id')}"
            )

    async def do_completeJob(self, action: Mapping[str, Any]) -> None:
        job_id, _ = self._job(action)
        worker = str(action.get("workerId", DRIVER_WORKER))
        await self._expecting_error(
            action, lambda: self.engine.complete_job(job_id, worker, action.get("variables"))
        )

    async def do_failJob(self, action: Mapping[str, Any]) -> None:
        job_id, _ = self._job(action)
        worker = str(action.get("workerId", DRIVER_WORKER))
        await self._expecting_error(
            action,
            lambda: self.engine.fail_job(
                job_id,
                worker,
                retryable=bool(action.get("retryable", False)),
                error_message=str(action.get("errorMessage", "")),
            ),
        )


async def run_scenario(
    engine: Engine, scenario: Scenario, *, scale: float = 1.0, audit: AuditReader | None = None
) -> Result:
    """Run one scenario; never raises for a scenario failure (the result says it).

    Audit expectations are checked only with an ``audit`` reader."""
    started = time.monotonic()
    run = _Run(engine, scenario, scale, audit)
    try:
        await run.run()
    except (CheckFailed, ConformanceError) as exc:
        return Result(scenario.name, scenario.group, False, time.monotonic() - started, str(exc))
    except Exception as exc:  # a driver bug or an engine answer it cannot read
        return Result(
            scenario.name,
            scenario.group,
            False,
            time.monotonic() - started,
            f"{type(exc).__name__}: {exc}",
        )
    return Result(scenario.name, scenario.group, True, time.monotonic() - started)
