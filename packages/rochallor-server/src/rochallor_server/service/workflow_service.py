"""The engine's use cases, one method per API operation, shared by REST and gRPC: here the
operations that change state (and the poll); the read-only queries are in :mod:`.queries`.

An event (starting, completing a job, a signal …) reads its instance, decides with the pure
core and writes all its commands in one statement that applies only if the instance is still
at the revision read (optimistic concurrency: no row lock held across the decision). Job
events and starts are written in groups (:mod:`.batching`: one read and one write statement
per batch). The operations marked ``@_operation`` (every event, a definition upload, a lease
extension) run under the retry policy (:mod:`.retry`), which decides an event again when
another event got there first, and to their end even when their caller goes away. A poll's
claim and the lease sweeper's reclaim are not run again: the poll answers the error, the
sweeper reclaims on its next tick.

Database access is through a :class:`~.ports.Session`, in one of two scopes:

- ``store.session()``, each statement commits on its own: every event (the batched job events
  and starts, a cancel, a signal, a user task, a fired timer, an instance retry; its one write
  statement is all it changes), the claim of a poll, lease extension, and the reads.
- ``store.transaction()``, all statements commit together: a definition upload (lock the id,
  compare with the latest version, insert), a chained start (the child with the removal of its
  request), the lease reclaim (the jobs with their audit rows), and the paged lists (a page and
  its total from one snapshot).

Errors are the domain errors of :mod:`rochallor_server.errors`; the API edges map them to
status codes.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import datetime as dt
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Concatenate, ParamSpec, TypeVar

import attrs

import rochallor_validator as rv
from rochallor_server import auth
from rochallor_server.config import EngineSettings
from rochallor_server.engine import commands as cmd
from rochallor_server.engine import instance as core
from rochallor_server.engine import limits
from rochallor_server.engine.clock import Clock, IdGenerator
from rochallor_server.engine.definitions import CompiledDefinition, compile_definition
from rochallor_server.engine.model import (
    AuditEntry,
    DefinitionRecord,
    Instance,
    Job,
    JobStatus,
    JsonObject,
)
from rochallor_server.errors import (
    BadRequest,
    Conflict,
    DefinitionRejected,
    InstanceChanged,
    NotFound,
    RochallorError,
    StorageError,
    Violation,
)
from rochallor_server.metrics import Metrics
from rochallor_server.service import retry
from rochallor_server.service.batching import Batcher, Pending
from rochallor_server.service.polling import PollHub, Waiter
from rochallor_server.service.ports import (
    InstanceFilter,
    LoadedJob,
    Session,
    Store,
)
from rochallor_server.service.queries import Queries, check_filter

log = logging.getLogger(__name__)

_DEFINITION_CACHE_SIZE = 512
# Workers seen polling: written at most this often per worker and job types, kept this long.
WORKER_RECORD_INTERVAL = 10.0
WORKER_FORGET_AFTER = dt.timedelta(days=1)
_WORKER_RECORDS_KEPT = 10_000
MAX_BULK_RETRY = 500


# Group commit (service/batching.py): events waiting for the database together are written
# together, up to this many per statement, with this many batches in flight.
_BATCH_SIZE = 64
_BATCH_RUNNERS = 2

_P = ParamSpec("_P")
_R = TypeVar("_R")
_T = TypeVar("_T")


def _operation(
    method: Callable[Concatenate[WorkflowService, _P], Awaitable[_R]],
) -> Callable[Concatenate[WorkflowService, _P], Awaitable[_R]]:
    """An operation that changes state: run under the retry policy (:mod:`.retry`), to its end.

    It runs in a task of its own that the service tracks: a caller that goes away (an HTTP
    client hanging up cancels its handler) does not cut it between its commit and its
    after-commit work (chaining); its failure, which nobody awaits then, is logged; and
    :meth:`WorkflowService.drain` waits for it.
    """

    async def run(self: WorkflowService, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        return await self._run_operation(method.__name__, lambda: method(self, *args, **kwargs))

    run.__name__, run.__qualname__, run.__doc__ = (
        method.__name__,
        method.__qualname__,
        method.__doc__,
    )
    return run


def _log_abandoned(task: asyncio.Task[Any]) -> None:
    """The outcome of an operation whose caller went away: nobody else will see it."""
    if task.cancelled():
        return
    exc = task.exception()
    if isinstance(exc, RochallorError):
        log.warning("%s failed after its caller went away: %s", task.get_name(), exc)
    elif exc is not None:
        log.error("%s failed after its caller went away", task.get_name(), exc_info=exc)


DispatchEncoder = Callable[[Job, str], bytes]
"""``kafka_outbox`` mode: the record value dispatching a job under a dedup id."""

_Decide = Callable[[CompiledDefinition, core.InstanceState, Job], "core.Outcome | None"]


@attrs.frozen(kw_only=True)
class _JobEvent:
    job_id: str
    decide: _Decide
    principal: auth.Principal | None = None
    """The caller (captured at submit: the batch runs in another task)."""


@attrs.frozen(kw_only=True)
class _Start:
    definition_id: str
    version: int | None
    """``None``: the latest version."""
    variables: JsonObject
    business_key: str | None
    actor: str
    parent: str | None
    """The instance this one is chained from."""
    principal: str | None = None


@attrs.frozen(kw_only=True)
class RetryResult:
    """One instance of a bulk retry: the retried instance, or why it was refused."""

    instance_id: str
    instance: Instance | None = None
    error: RochallorError | None = None


@attrs.frozen(kw_only=True)
class UploadResult:
    record: DefinitionRecord
    created: bool
    warnings: list[Violation]


def _violation(issue: rv.ValidationIssue) -> Violation:
    return Violation(issue.code, issue.message, issue.step_id, issue.path)


def _canonical(definition: rv.WorkflowDefinition) -> JsonObject:
    document = rv.definition_to_json(attrs.evolve(definition, version=None))
    document.pop("version", None)
    return document


class WorkflowService(Queries):
    """Facade over every operation of the API (the read-only queries in :class:`Queries`)."""

    def __init__(
        self,
        store: Store,
        *,
        settings: EngineSettings,
        metrics: Metrics,
        clock: Clock,
        ids: IdGenerator,
        dispatch: DispatchEncoder | None = None,
        dispatched: Callable[[], None] | None = None,
        retry_policy: retry.RetryPolicy = retry.POLICY,
    ) -> None:
        """``dispatch`` (``kafka_outbox`` mode): every job left claimable is also written to
        the dispatch outbox, in the transaction that makes it claimable; ``dispatched`` is
        called after such a write (it wakes this process's relay)."""
        self.store = store
        self.retry_policy = retry_policy
        self._dispatch = dispatch
        self._dispatched = dispatched
        self.settings = settings
        self.metrics = metrics
        self.clock = clock
        self.ids = ids
        self._definitions: OrderedDict[tuple[str, int], CompiledDefinition] = OrderedDict()
        self._background: set[asyncio.Task[None]] = set()
        self._operations: set[asyncio.Task[Any]] = set()
        self._polls = PollHub(store.wait_for_jobs, max_waiters=settings.max_poll_waiters)
        metrics.poll_waiters.set_function(lambda: self._polls.waiting)
        self._chain_runner: asyncio.Task[None] | None = None
        self._chains_again = False
        self._closing = asyncio.Event()
        # (worker, job types) -> when this replica last wrote that they were seen (monotonic)
        self._workers_recorded: dict[tuple[str, tuple[str, ...]], float] = {}
        self._starts: Batcher[_Start, Instance] = Batcher(
            self._run_starts,
            name="starts",
            max_size=_BATCH_SIZE,
            runners=_BATCH_RUNNERS,
            observe=metrics.batch_size.labels("starts").observe,
        )
        self._job_events: Batcher[_JobEvent, None] = Batcher(
            self._run_job_events,
            name="job-events",
            max_size=_BATCH_SIZE,
            runners=_BATCH_RUNNERS,
            observe=metrics.batch_size.labels("job_events").observe,
        )

    # -- plumbing -------------------------------------------------------------------------

    async def _run_operation(self, name: str, attempt: Callable[[], Awaitable[_R]]) -> _R:
        """``attempt`` under the retry policy, in a tracked task that outlives its caller."""
        operation = self.retry_policy.run(
            attempt, name=name, on_stale=self.metrics.instance_conflicts.inc
        )
        # The task copies the caller's context: audit entries name the caller.
        task = asyncio.create_task(operation, name=name)
        self._operations.add(task)
        task.add_done_callback(self._operations.discard)
        try:
            await asyncio.wait((task,))
        except asyncio.CancelledError:
            task.add_done_callback(_log_abandoned)
            raise
        return task.result()

    @property
    def operations_in_flight(self) -> int:
        """Operations running now, including those whose caller went away."""
        return len(self._operations)

    async def _compiled(self, tx: Session, definition_id: str, version: int) -> CompiledDefinition:
        key = (definition_id, version)
        found = self._definitions.get(key)
        if found is not None:
            self._definitions.move_to_end(key)
            return found
        record = await tx.definition(definition_id, version)
        if record is None:
            raise NotFound("definition not found")
        compiled = compile_definition(record)
        self._definitions[key] = compiled
        if len(self._definitions) > _DEFINITION_CACHE_SIZE:
            self._definitions.popitem(last=False)
        return compiled

    async def _persist(self, tx: Session, commands: Sequence[cmd.Command]) -> None:
        """Write an event's commands; :class:`InstanceChanged` if its instance moved on.

        Runs in the task of the request (or background job) that caused the event, so its
        audit entries are attributed to the current caller.
        """
        commands = _attributed(commands, auth.current_id())
        [applied] = await self._write(tx, [commands])
        if not applied:
            raise InstanceChanged("the instance changed while the event was decided")

    async def _write(self, tx: Session, events: Sequence[Sequence[cmd.Command]]) -> list[bool]:
        started = time.perf_counter()
        dispatching = False
        if self._dispatch is not None:
            events = [[*c, *self._dispatches(cmd.claimable_jobs(c))] for c in events]
            dispatching = any(isinstance(c, cmd.EnqueueDispatch) for e in events for c in e)
        applied = await tx.apply_events(events, audit=self.settings.audit_log_enabled)
        if dispatching and self._dispatched is not None:
            self._dispatched()
        self.metrics.write_duration.labels("instance").observe(time.perf_counter() - started)
        return applied

    def _dispatches(self, jobs: Sequence[Job]) -> list[cmd.Command]:
        """One outbox row per job (a fresh dedup id each: a retry is a new message)."""
        encode = self._dispatch
        if encode is None:
            return []
        dispatches: list[cmd.Command] = []
        for job in jobs:
            dedup_id = self.ids.new_id()
            dispatches.append(
                cmd.EnqueueDispatch(
                    id=dedup_id,
                    job_id=job.id,
                    instance_id=job.instance_id,
                    job_type=job.job_type,
                    payload=encode(job, dedup_id),
                )
            )
        return dispatches

    def _after_commit(self, commands: Sequence[cmd.Command]) -> None:
        """Metrics and auto-chaining, once the transaction has committed."""
        m = self.metrics
        for c in commands:
            if isinstance(c, cmd.InsertExecution):
                m.steps_executed.labels(c.execution.step_type).inc()
            elif isinstance(c, cmd.InsertInstance | cmd.SaveInstance):
                if isinstance(c, cmd.InsertInstance):
                    m.instances_started.inc()
                if c.instance.status.terminal:
                    m.instances_completed.labels(c.instance.status.value.lower()).inc()
            elif isinstance(c, cmd.RetryJob):
                m.job_retries.inc()
            elif isinstance(c, cmd.ChainNext):
                self._kick_chains()  # the request itself is in the committed write

    def _spawn(self, coro: Any, *, name: str) -> asyncio.Task[None]:
        # A fresh context: background work is the engine's own, not the caller's.
        task = asyncio.create_task(coro, name=name, context=contextvars.Context())
        self._background.add(task)
        task.add_done_callback(self._background_done)
        return task

    def _background_done(self, task: asyncio.Task[None]) -> None:
        """Forget a finished background task; log its failure (it has nobody to raise to)."""
        self._background.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.error("background task %s failed", task.get_name(), exc_info=exc)

    def begin_shutdown(self) -> None:
        """End waiting long polls now (they answer with what they have: nothing)."""
        self._closing.set()
        self._polls.wake_all()

    @property
    def poll_waiters(self) -> int:
        """Long polls waiting for jobs now."""
        return self._polls.waiting

    async def drain(self, grace: float = 10.0) -> None:
        """Wait for operations in flight (also those whose caller went away), batched events
        and after-commit work (chaining), for up to ``grace`` seconds; cancel what is left."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                while self._operations or self._background:
                    await asyncio.wait(self._operations | self._background)
                await self._starts.drain()
                await self._job_events.drain()
        left = self._operations | self._background
        for task in left:
            task.cancel()
        if left:
            await asyncio.wait(left, timeout=1.0)

    def _kick_chains(self) -> None:
        """Make the chained starts asked for now (one runner at a time; the chain sweeper
        makes those a crash or a shutdown left)."""
        if self._chain_runner is not None and not self._chain_runner.done():
            self._chains_again = True
            return
        self._chain_runner = self._spawn(self._chains_until_none(), name="chains")

    async def _chains_until_none(self) -> None:
        while True:
            self._chains_again = False
            await self.run_pending_chains()
            if not self._chains_again:
                return

    async def run_pending_chains(self, limit: int = 1000) -> int:
        """Start the chained instances that parents' final transactions asked for.

        Each child is started in one transaction with the removal of its request, so every
        request starts exactly one child, whoever makes it (this replica right after the
        parent's commit, the chain sweeper after a crash, another replica). Returns how many
        requests were made (started, or audited as failed on the parent).
        """
        made = 0
        while made < limit and await self._chain_one():
            made += 1
        return made

    @_operation
    async def _chain_one(self) -> bool:
        async with self._session("chain", transaction=True) as tx:
            chain = await tx.next_pending_chain()
            if chain is None:
                return False
            request = _Start(
                definition_id=chain.definition_id,
                version=None,
                variables=chain.variables,
                business_key=chain.business_key,
                actor="engine",
                parent=chain.parent_instance_id,
            )
            try:
                latest = await tx.latest_versions([chain.definition_id])
                commands, child = await self._decide_start(tx, request, latest)
            except StorageError:
                raise
            except RochallorError as exc:  # the target cannot be started: say so on the parent
                log.warning(
                    "chaining %s -> %s failed: %s",
                    chain.parent_instance_id,
                    chain.definition_id,
                    exc,
                )
                entry = AuditEntry(
                    kind="instance-chain-failed",
                    actor="engine",
                    instance_id=chain.parent_instance_id,
                    detail={"target": chain.definition_id, "error": str(exc)},
                )
                commands = [cmd.Audit(entry=entry)]
            else:
                log.debug("chained %s -> %s", chain.parent_instance_id, child.id)
            await self._write(tx, [commands])
            await tx.delete_pending_chain(chain.id)
        self._after_commit(commands)
        return True

    # -- definitions ----------------------------------------------------------------------

    @_operation
    async def upload_definition(self, document: object) -> UploadResult:
        """``document`` is the decoded JSON body. Raises ``BadRequest`` (``parse error: …``)
        or ``DefinitionRejected``."""
        if not isinstance(document, dict):
            raise BadRequest("parse error: a workflow definition must be a JSON object")
        problem = limits.json_problem(document, "definition")
        if problem is not None:
            raise BadRequest(problem)
        report = rv.check_definition(document)
        if report.errors or report.definition is None:
            summary = str(rv.DefinitionInvalid(report.errors))
            if any(i.is_parse_error for i in report.errors):
                raise BadRequest(summary)
            raise DefinitionRejected([_violation(i) for i in report.errors])
        warnings = [_violation(i) for i in report.warnings]
        definition = attrs.evolve(report.definition, version=None)
        canonical = _canonical(definition)
        async with self._session("upload_definition", transaction=True) as tx:
            await tx.lock_definition(definition.id)
            latest = await tx.latest_definition(definition.id)
            if latest is not None:
                previous = rv.parse_definition(latest.document)
                if attrs.evolve(previous, version=None) == definition:
                    return UploadResult(record=latest, created=False, warnings=warnings)
            record = await tx.insert_definition(
                document=canonical,
                definition_id=definition.id,
                name=definition.name,
                uploaded_at=self.clock.now(),
            )
            entry = AuditEntry(
                kind="definition-uploaded",
                actor="api",
                instance_id=None,
                detail={"id": record.id, "version": record.version},
            )
            await self._persist(tx, [cmd.Audit(entry=entry)])
        self.metrics.definitions_uploaded.inc()
        return UploadResult(record=record, created=True, warnings=warnings)

    # -- instances ------------------------------------------------------------------------

    @_operation
    async def start_instance(
        self,
        *,
        definition_id: str,
        version: int | None,
        variables: JsonObject | None,
        business_key: str | None,
    ) -> Instance:
        """``version`` None, 0 or negative: the latest (``rest-api.md`` §5.2)."""
        limits.required_identifier("definitionId", definition_id)
        if version is not None and version > limits.MAX_VERSION:
            raise NotFound(f'definition "{definition_id}" version {version} not found')
        return await self._start(
            definition_id=definition_id,
            version=version if version and version > 0 else None,
            variables=limits.variables("variables", variables),
            business_key=limits.identifier("businessKey", business_key),
            actor="api",
            parent=None,
            principal=auth.current_id(),
        )

    async def _start(
        self,
        *,
        definition_id: str,
        version: int | None,
        variables: JsonObject | None,
        business_key: str | None,
        actor: str,
        parent: str | None,
        principal: str | None = None,
    ) -> Instance:
        request = _Start(
            definition_id=definition_id,
            version=version,
            variables=variables or {},
            business_key=business_key,
            actor=actor,
            parent=parent,
            principal=principal,
        )
        return await self._starts.submit(request, retry.placement())

    async def _run_starts(self, batch: list[Pending[_Start, Instance]]) -> None:
        """Start a batch of instances: one read of the latest versions, one write."""
        async with self._session("start_instance") as tx:
            wanted = sorted({p.item.definition_id for p in batch if p.item.version is None})
            latest = await tx.latest_versions(wanted) if wanted else {}
            writes: list[tuple[Pending[_Start, Instance], list[cmd.Command], Instance]] = []
            for pending in batch:
                try:
                    commands, instance = await self._decide_start(tx, pending.item, latest)
                except RochallorError as exc:
                    pending.failed(exc)
                    continue
                writes.append((pending, commands, instance))
            if writes:
                await self._write(tx, [commands for _, commands, _ in writes])
        for pending, commands, instance in writes:
            self._after_commit(commands)
            pending.done(instance)

    async def _decide_start(
        self, tx: Session, request: _Start, latest: dict[str, int]
    ) -> tuple[list[cmd.Command], Instance]:
        definition_id, version = request.definition_id, request.version
        if version is None:
            version = latest.get(definition_id)
            if version is None:
                raise NotFound(f'definition "{definition_id}" not found')
        try:
            definition = await self._compiled(tx, definition_id, version)
        except NotFound:
            raise NotFound(f'definition "{definition_id}" version {version} not found') from None
        outcome = core.start(
            definition,
            instance_id=self.ids.new_id(),
            variables=request.variables,
            business_key=request.business_key,
            now=self.clock.now(),
            ids=self.ids,
            actor=request.actor,
        )
        commands = _attributed(outcome.commands, request.principal)
        if request.parent is not None:
            entry = AuditEntry(
                kind="instance-chained",
                actor="engine",
                instance_id=request.parent,
                detail={
                    "parent": request.parent,
                    "child": outcome.instance.id,
                    "definitionId": definition.id,
                    "definitionVersion": definition.version,
                },
            )
            commands.append(cmd.Audit(entry=entry))
        return commands, outcome.instance

    @_operation
    async def cancel_instance(self, instance_id: str, reason: str) -> Instance:
        limits.identifier("id", instance_id)
        reason = limits.message("reason", reason) or ""
        async with self._session("cancel_instance") as tx:
            state, definition = await self._load(
                tx, instance_id, f'instance "{instance_id}" not found'
            )
            outcome = core.cancel(
                definition, state, reason=reason, now=self.clock.now(), ids=self.ids
            )
            await self._persist(tx, outcome.commands)
        self._after_commit(outcome.commands)
        return outcome.instance

    @_operation
    async def retry_instance(self, instance_id: str, *, variables: JsonObject | None) -> Instance:
        """Resume a FAILED instance from its failed step (:func:`core.retry`)."""
        limits.identifier("id", instance_id)
        variables = limits.variables("variables", variables)
        async with self._session("retry_instance") as tx:
            state, definition = await self._load(
                tx, instance_id, f'instance "{instance_id}" not found'
            )
            # Read after the instance: the write applies only at the revision read first.
            history = await tx.history(instance_id)
            outcome = core.retry(
                definition,
                state,
                history,
                variables=variables,
                now=self.clock.now(),
                ids=self.ids,
            )
            await self._persist(tx, outcome.commands)
        self._after_commit(outcome.commands)
        return outcome.instance

    async def retry_instances(
        self,
        *,
        instance_ids: Sequence[str] | None,
        filter: InstanceFilter | None,
        variables: JsonObject | None,
        limit: int,
    ) -> tuple[list[RetryResult], int]:
        """Retry the given instances, or the newest ``limit`` FAILED ones matching ``filter``;
        one result per instance, and how many instances matched in all."""
        limits.variables("variables", variables)
        if instance_ids is not None:
            for n, instance_id in enumerate(instance_ids):
                limits.required_identifier(f"instanceIds[{n}]", instance_id)
            ids = list(dict.fromkeys(instance_ids))
            matched = len(ids)
        else:
            check_filter(filter or InstanceFilter(), "filter.")
            failed = attrs.evolve(filter or InstanceFilter(), status="FAILED")
            async with self._session("list_instances", transaction=True) as tx:
                page = await tx.list_instances(
                    filter=failed, offset=0, limit=min(max(limit, 1), MAX_BULK_RETRY)
                )
            ids, matched = [i.id for i in page.items], page.total
        outcomes = await asyncio.gather(
            *(self.retry_instance(i, variables=variables) for i in ids), return_exceptions=True
        )
        results: list[RetryResult] = []
        for instance_id, outcome in zip(ids, outcomes, strict=True):
            if isinstance(outcome, Instance):
                results.append(RetryResult(instance_id=instance_id, instance=outcome))
            elif isinstance(outcome, RochallorError):
                results.append(RetryResult(instance_id=instance_id, error=outcome))
            else:
                raise outcome
        return results, matched

    async def _load(
        self, tx: Session, instance_id: str, missing: str
    ) -> tuple[core.InstanceState, CompiledDefinition]:
        state = await tx.load_instance(instance_id)
        if state is None:
            raise NotFound(missing)
        return await self._state(tx, state)

    async def _state(
        self, tx: Session, state: core.InstanceState
    ) -> tuple[core.InstanceState, CompiledDefinition]:
        instance = state.instance
        definition = await self._compiled(tx, instance.definition_id, instance.definition_version)
        return state, definition

    # -- jobs -----------------------------------------------------------------------------

    async def poll_jobs(
        self,
        *,
        worker_id: str,
        job_types: Sequence[str],
        max_jobs: int,
        wait_seconds: float,
        encode: Callable[[Job], _T],
    ) -> list[_T]:
        """Claim up to ``max_jobs``; with ``wait_seconds`` > 0, wait for jobs to appear.

        Each claimed job is handed out as ``encode(job)`` (its wire form). A job that cannot be
        encoded is released at once rather than held until its lease ends, and the others are
        handed out: a poll never loses the jobs it claimed.
        """
        limits.required_identifier("workerId", worker_id)
        if not job_types:
            raise BadRequest("jobTypes must not be empty")
        for n, job_type in enumerate(job_types):
            limits.required_identifier(f"jobTypes[{n}]", job_type)
        auth.check_job_types(auth.current(), job_types)
        max_jobs = min(max_jobs, limits.MAX_JOBS_PER_POLL)
        if max_jobs <= 0:
            return []
        job_types = list(dict.fromkeys(job_types))  # each type once in the claim
        wait_seconds = min(max(wait_seconds, 0.0), self.settings.max_poll_wait_seconds)
        deadline = time.monotonic() + wait_seconds
        waiter: Waiter | None = None
        if wait_seconds > 0 and not self._closing.is_set():
            # Joined before the first claim: a job arriving during it wakes this poll.
            waiter = self._polls.join(job_types)
            if waiter is None:
                self.metrics.poll_waiters_refused.inc()
        seen = self._worker_due(worker_id, job_types)
        try:
            while True:
                now, jobs = await self._claim(worker_id, job_types, max_jobs, record=seen)
                seen = False
                remaining = deadline - time.monotonic()
                if waiter is not None:
                    self._polls.claimed(waiter, full=len(jobs) >= max_jobs)
                if jobs or waiter is None or remaining <= 0 or self._closing.is_set():
                    break
                await waiter.wait(remaining)
        finally:
            if waiter is not None:
                self._polls.leave(waiter)
        if self.metrics.polling:
            if not jobs:
                self.metrics.empty_polls.inc()
            for job in jobs:
                latency = max((now - job.created_at).total_seconds(), 0.0)
                self.metrics.job_pickup_latency.observe(latency)
                self.metrics.job_poll_latency.observe(latency)
        return await self._hand_out(jobs, worker_id, encode)

    async def _hand_out(
        self, jobs: Sequence[Job], worker_id: str, encode: Callable[[Job], _T]
    ) -> list[_T]:
        encoded: list[_T] = []
        unsent: list[str] = []
        for job in jobs:
            try:
                encoded.append(encode(job))
            except Exception:
                log.exception("job %s cannot be handed out; released", job.id)
                unsent.append(job.id)
        if unsent:
            async with self._session("release_jobs") as tx:
                await tx.release_jobs(job_ids=unsent, worker_id=worker_id)
        return encoded

    async def _claim(
        self, worker_id: str, job_types: Sequence[str], max_jobs: int, *, record: bool
    ) -> tuple[dt.datetime, list[Job]]:
        """One claim; with ``record``, the worker is first recorded as seen (job queues view)."""
        now = self.clock.now()
        expires = now + dt.timedelta(seconds=self.settings.job_lease_seconds)
        async with self._session("poll_jobs") as tx:
            if record:
                await tx.record_workers(
                    worker_id=worker_id,
                    job_types=job_types,
                    seen_at=now,
                    forget_before=now - WORKER_FORGET_AFTER,
                )
            jobs = await tx.claim_jobs(
                worker_id=worker_id,
                job_types=job_types,
                limit=max_jobs,
                now=now,
                lease_expires_at=expires,
            )
        return now, jobs

    def _worker_due(self, worker_id: str, job_types: Sequence[str]) -> bool:
        """Whether this poll should record its worker as seen (throttled per replica)."""
        key = (worker_id, tuple(sorted(job_types)))
        now = time.monotonic()
        last = self._workers_recorded.get(key)
        if last is not None and now - last < WORKER_RECORD_INTERVAL:
            return False
        if len(self._workers_recorded) >= _WORKER_RECORDS_KEPT:
            self._workers_recorded.clear()
        self._workers_recorded[key] = now
        return True

    async def _job_event(self, job_id: str, decide: _Decide) -> None:
        event = _JobEvent(job_id=job_id, decide=decide, principal=auth.current())
        await self._job_events.submit(event, retry.placement())

    async def _run_job_events(self, batch: list[Pending[_JobEvent, None]]) -> None:
        """Decide a batch of job events on one read; write them with one statement.

        One event per instance per write: a second event of an instance (parallel branches
        completing together) is settled, once the batch is written, with
        :class:`~.retry.RunAfterBatch`; the retry policy submits it again at once, to lead the
        next batch, where it is decided on what the first one wrote.
        """
        async with self._session("job_events") as tx:
            loaded = await tx.load_job_events(list(dict.fromkeys(p.item.job_id for p in batch)))
            writes: dict[str, tuple[Pending[_JobEvent, None], list[cmd.Command]]] = {}
            later: list[Pending[_JobEvent, None]] = []
            for pending in batch:
                found = loaded.get(pending.item.job_id)
                if found is not None and found.job.instance_id in writes:
                    later.append(pending)
                    continue
                try:
                    outcome = await self._decide_job_event(tx, pending.item, found)
                except RochallorError as exc:
                    pending.failed(exc)
                    continue
                if outcome is None:
                    pending.done(None)
                else:
                    assert found is not None  # an event with an outcome has its job
                    principal = pending.item.principal
                    commands = _attributed(
                        outcome.commands, None if principal is None else principal.id
                    )
                    writes[found.job.instance_id] = (pending, commands)
            # Instances in id order: concurrent batches lock the rows they share in one order.
            ordered = [writes[instance_id] for instance_id in sorted(writes)]
            applied = await self._write(tx, [c for _, c in ordered]) if ordered else []
        for (pending, commands), ok in zip(ordered, applied, strict=True):
            if ok:
                self._after_commit(commands)
                pending.done(None)
            else:
                pending.failed(InstanceChanged("the instance changed while the event was decided"))
        for pending in later:
            pending.failed(retry.RunAfterBatch())

    async def _decide_job_event(
        self, tx: Session, event: _JobEvent, loaded: LoadedJob | None
    ) -> core.Outcome | None:
        """The event's outcome; ``None`` when it changes nothing."""
        if loaded is None:
            raise NotFound(f'job "{event.job_id}" not found')
        job = loaded.job
        auth.check_job_types(event.principal, [job.job_type])
        if not job.status.open:
            return None  # finished jobs: idempotent no-op
        if loaded.state is None:
            raise NotFound("instance not found")
        state, definition = await self._state(tx, loaded.state)
        outcome: core.Outcome | None = event.decide(definition, state, job)
        return outcome

    @_operation
    async def complete_job(
        self, job_id: str, *, worker_id: str | None, variables: JsonObject | None
    ) -> None:
        limits.required_identifier("jobId", job_id)
        limits.identifier("workerId", worker_id)
        limits.variables("variables", variables)

        def decide(
            definition: CompiledDefinition, state: core.InstanceState, job: Job
        ) -> core.Outcome | None:
            return core.complete_job(
                definition,
                state,
                job,
                worker_id=worker_id,
                variables=variables,
                now=self.clock.now(),
                ids=self.ids,
            )

        await self._job_event(job_id, decide)

    @_operation
    async def fail_job(
        self, job_id: str, *, worker_id: str | None, error_message: str | None, retryable: bool
    ) -> None:
        limits.required_identifier("jobId", job_id)
        limits.identifier("workerId", worker_id)
        error_message = limits.message("errorMessage", error_message)

        def decide(
            definition: CompiledDefinition, state: core.InstanceState, job: Job
        ) -> core.Outcome | None:
            return core.fail_job(
                definition,
                state,
                job,
                worker_id=worker_id,
                error_message=error_message,
                retryable=retryable,
                now=self.clock.now(),
                ids=self.ids,
            )

        await self._job_event(job_id, decide)

    @_operation
    async def extend_job_lease(self, job_id: str, *, worker_id: str) -> dt.datetime:
        """Only the worker holding the lease may extend it (by one lease length from now)."""
        limits.required_identifier("jobId", job_id)
        limits.required_identifier("workerId", worker_id)
        expires = self.clock.now() + dt.timedelta(seconds=self.settings.job_lease_seconds)
        async with self._session("extend_job_lease") as tx:
            principal = auth.current()
            if principal is not None and principal.job_types is not None:
                leased = await tx.get_job(job_id)
                if leased is not None:
                    auth.check_job_types(principal, [leased.job_type])
            extended = await tx.extend_lease(
                job_id=job_id, worker_id=worker_id, lease_expires_at=expires
            )
            if extended is None:
                job = await tx.get_job(job_id)
                if job is None:
                    raise NotFound(f'job "{job_id}" not found')
                raise Conflict(f'job "{job_id}" is not leased to worker "{worker_id}"')
        return extended

    # -- user tasks and signals -----------------------------------------------------------

    @_operation
    async def complete_user_task(
        self,
        instance_id: str,
        step_id: str,
        *,
        variables: JsonObject | None,
        completed_by: str | None,
    ) -> None:
        limits.required_identifier("instanceId", instance_id)
        limits.required_identifier("userTaskId", step_id)
        limits.variables("variables", variables)
        limits.identifier("workerId", completed_by)
        async with self._session("complete_user_task") as tx:
            state, definition = await self._load(tx, instance_id, "workflow instance not found")
            core.check_user_task(definition, state.instance, step_id)
            task = await tx.open_user_task(instance_id, step_id)
            outcome = core.complete_user_task(
                definition,
                state,
                step_id,
                task,
                variables=variables,
                completed_by=completed_by or None,
                now=self.clock.now(),
                ids=self.ids,
            )
            await self._persist(tx, outcome.commands)
        self._after_commit(outcome.commands)

    @_operation
    async def signal(self, instance_id: str, step_id: str, variables: JsonObject | None) -> None:
        limits.required_identifier("instanceId", instance_id)
        limits.required_identifier("waitStepId", step_id)
        limits.variables("variables", variables)
        async with self._session("signal") as tx:
            state, definition = await self._load(tx, instance_id, "workflow instance not found")
            outcome = core.signal(
                definition,
                state,
                step_id,
                variables=variables,
                now=self.clock.now(),
                ids=self.ids,
            )
            await self._persist(tx, outcome.commands)
        self._after_commit(outcome.commands)

    # -- background events ----------------------------------------------------------------

    @_operation
    async def fire_timer(self, instance_id: str, timer_id: str) -> bool:
        """Fire one due timer in its own transaction; ``False`` if it no longer applies."""
        async with self._session("fire_timer") as tx:
            try:
                state, definition = await self._load(tx, instance_id, "instance not found")
            except NotFound:
                return False
            timer = await tx.get_timer(timer_id)
            if timer is None or timer.status.value != "PENDING":
                return False
            outcome = core.fire_timer(definition, state, timer, now=self.clock.now(), ids=self.ids)
            await self._persist(tx, outcome.commands)
        self._after_commit(outcome.commands)
        return True

    async def fire_due_timers(self, limit: int = 100) -> int:
        now = self.clock.now()
        async with self._session("due_timers") as tx:
            due = await tx.due_timers(now=now, limit=limit)
        fired = 0
        for timer in due:
            if await self.fire_timer(timer.instance_id, timer.id):
                fired += 1
        return fired

    async def reclaim_expired_leases(self, limit: int = 1000) -> int:
        """Expired leases back to claimable; retries are not spent (``semantics.md`` §8.4)."""
        async with self._session("reclaim_leases", transaction=True) as tx:
            jobs = await tx.reclaim_expired_leases(now=self.clock.now(), limit=limit)
            audits: list[cmd.Command] = [
                cmd.Audit(
                    entry=AuditEntry(
                        kind="job-lease-expired",
                        actor="engine",
                        instance_id=job.instance_id,
                        detail={"jobId": job.id, "previousWorker": job.worker_id},
                    )
                )
                for job in jobs
            ]
            # kafka_outbox mode: a reclaimed job is dispatched again, its budget unchanged
            audits += self._dispatches(
                [attrs.evolve(job, status=JobStatus.UNLOCKED) for job in jobs]
            )
            if audits:
                await self._persist(tx, audits)
        self.metrics.job_timeouts.inc(len(jobs))
        return len(jobs)


def _attributed(commands: Sequence[cmd.Command], principal: str | None) -> list[cmd.Command]:
    """``commands`` with ``principal`` on each audit entry that has none yet."""
    if principal is None:
        return list(commands)
    return [
        cmd.Audit(entry=attrs.evolve(c.entry, principal=principal))
        if isinstance(c, cmd.Audit) and c.entry.principal is None
        else c
        for c in commands
    ]
