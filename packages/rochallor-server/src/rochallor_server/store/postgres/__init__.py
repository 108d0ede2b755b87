"""The PostgreSQL store: :class:`PostgresStore` implements :class:`service.ports.Store`.

Every statement is in ``queries.sql``; rows become engine models in :mod:`.rows`. Pollers are
woken through ``LISTEN``/``NOTIFY`` on the ``rochallor_jobs`` channel (payload: the job type):
the statements that make a job claimable notify in their own transaction, so the notification
is delivered exactly when the job becomes visible (at commit).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING, Any, LiteralString, TypeAlias, assert_never

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from rochallor_server.engine.commands import (
    Audit,
    CancelOpenWork,
    ChainNext,
    Command,
    CompleteJob,
    CompleteUserTask,
    FailJob,
    FinishExecution,
    InsertExecution,
    InsertInstance,
    InsertJob,
    InsertTimer,
    InsertUserTask,
    MarkTimerFired,
    RetryJob,
    SaveInstance,
)
from rochallor_server.engine.model import (
    DefinitionRecord,
    Instance,
    Job,
    JsonObject,
    StepExecution,
    Timer,
    UserTask,
)
from rochallor_server.errors import TransientStorageError
from rochallor_server.service import ports
from rochallor_server.store.postgres import rows
from rochallor_server.store.postgres.pool import create_pool
from rochallor_server.store.postgres.queries import QUERIES

log = logging.getLogger(__name__)

JOBS_CHANNEL = "rochallor_jobs"

# Looked up at import so that a statement missing from queries.sql fails at once.
_LOCK_DEFINITION_ID = QUERIES["lock_definition_id"]
_INSERT_DEFINITION = QUERIES["insert_definition"]
_LATEST_DEFINITION = QUERIES["latest_definition"]
_LATEST_DEFINITION_VERSION = QUERIES["latest_definition_version"]
_DEFINITION = QUERIES["definition"]
_LIST_DEFINITIONS = QUERIES["list_definitions"]
_COUNT_DEFINITIONS = QUERIES["count_definitions"]
_INSERT_INSTANCE = QUERIES["insert_instance"]
_SAVE_INSTANCE = QUERIES["save_instance"]
_GET_INSTANCE = QUERIES["get_instance"]
_LOCK_INSTANCE = QUERIES["lock_instance"]
_RUNNING_EXECUTIONS = QUERIES["running_executions"]
_LIST_INSTANCES = QUERIES["list_instances"]
_COUNT_INSTANCES = QUERIES["count_instances"]
_HISTORY = QUERIES["history"]
_INSERT_EXECUTION = QUERIES["insert_execution"]
_FINISH_EXECUTION = QUERIES["finish_execution"]
_INSERT_JOB = QUERIES["insert_job"]
_LOCK_JOB = QUERIES["lock_job"]
_COMPLETE_JOB = QUERIES["complete_job"]
_FAIL_JOB = QUERIES["fail_job"]
_RETRY_JOB = QUERIES["retry_job"]
_CLAIM_JOBS = QUERIES["claim_jobs"]
_EXTEND_LEASE = QUERIES["extend_lease"]
_RECLAIM_EXPIRED_LEASES = QUERIES["reclaim_expired_leases"]
_NOTIFY_JOB_TYPES = QUERIES["notify_job_types"]
_INSERT_USER_TASK = QUERIES["insert_user_task"]
_OPEN_USER_TASK = QUERIES["open_user_task"]
_COMPLETE_USER_TASK = QUERIES["complete_user_task"]
_INSERT_TIMER = QUERIES["insert_timer"]
_LOCK_TIMER = QUERIES["lock_timer"]
_MARK_TIMER_FIRED = QUERIES["mark_timer_fired"]
_DUE_TIMERS = QUERIES["due_timers"]
_CANCEL_OPEN_WORK = QUERIES["cancel_open_work"]
_INSERT_AUDIT = QUERIES["insert_audit"]
_TRY_ADVISORY_LOCK = QUERIES["try_advisory_lock"]
_ADVISORY_UNLOCK = QUERIES["advisory_unlock"]
_PING = QUERIES["ping"]

# asyncpg's classes are generic only in their stubs, hence the quoted aliases.
Connection: TypeAlias = "asyncpg.Connection[Any] | PoolConnectionProxy[Any]"
Pool: TypeAlias = "asyncpg.Pool[Any]"
_Statement: TypeAlias = tuple[LiteralString, tuple[object, ...]]


def like_pattern(keyword: str) -> str:
    """An ``ILIKE … ESCAPE '\\'`` pattern matching ``keyword`` literally as a substring."""
    escaped = keyword.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _by_age(jobs: list[Job]) -> list[Job]:
    return sorted(jobs, key=lambda job: (job.created_at, job.id))


class PostgresTransaction:
    """The store's reads and writes on one connection, inside one open transaction."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    # definitions

    async def latest_definition(self, definition_id: str) -> DefinitionRecord | None:
        row = await self._conn.fetchrow(_LATEST_DEFINITION, definition_id)
        return None if row is None else rows.definition_from_row(row)

    async def latest_version(self, definition_id: str) -> int | None:
        version: int | None = await self._conn.fetchval(_LATEST_DEFINITION_VERSION, definition_id)
        return version

    async def definition(self, definition_id: str, version: int) -> DefinitionRecord | None:
        row = await self._conn.fetchrow(_DEFINITION, definition_id, version)
        return None if row is None else rows.definition_from_row(row)

    async def lock_definition(self, definition_id: str) -> None:
        """Serialise uploads of ``definition_id`` until the transaction ends.

        Not (yet) in the port: taken before ``latest_definition``, it makes "compare with the
        latest, then insert" atomic, so two identical concurrent uploads create one version.
        """
        await self._conn.execute(_LOCK_DEFINITION_ID, definition_id)

    async def insert_definition(
        self, *, document: JsonObject, definition_id: str, name: str, uploaded_at: dt.datetime
    ) -> DefinitionRecord:
        # The transaction-scoped lock makes "max + 1" safe against a concurrent upload of the
        # same id (the unique constraint would otherwise turn the race into an error).
        await self.lock_definition(definition_id)
        description, parsed_steps, next_workflow_id = rows.definition_columns(document)
        row = await self._conn.fetchrow(
            _INSERT_DEFINITION,
            definition_id,
            name,
            description,
            rows.encode_document(document),
            parsed_steps,
            next_workflow_id,
            uploaded_at,
        )
        assert row is not None  # INSERT … SELECT over an aggregate yields exactly one row
        return rows.definition_from_row(row)

    async def list_definitions(
        self, *, keyword: str | None, offset: int, limit: int
    ) -> ports.Page[DefinitionRecord]:
        pattern = None if keyword is None else like_pattern(keyword)
        records = await self._conn.fetch(_LIST_DEFINITIONS, pattern, offset, limit)
        total = await self._conn.fetchval(_COUNT_DEFINITIONS, pattern)
        return ports.Page(items=[rows.definition_from_row(r) for r in records], total=total)

    # instances (reads)

    async def get_instance(self, instance_id: str) -> Instance | None:
        row = await self._conn.fetchrow(_GET_INSTANCE, instance_id)
        return None if row is None else rows.instance_from_row(row)

    async def list_instances(
        self, *, filter: ports.InstanceFilter, offset: int, limit: int
    ) -> ports.Page[Instance]:
        filters = (filter.definition_id, filter.status, filter.business_key)
        records = await self._conn.fetch(_LIST_INSTANCES, *filters, offset, limit)
        total = await self._conn.fetchval(_COUNT_INSTANCES, *filters)
        return ports.Page(items=[rows.instance_from_row(r) for r in records], total=total)

    async def history(self, instance_id: str) -> list[StepExecution]:
        return [rows.execution_from_row(r) for r in await self._conn.fetch(_HISTORY, instance_id)]

    # loading state under lock

    async def lock_instance(self, instance_id: str) -> tuple[Instance, list[StepExecution]] | None:
        row = await self._conn.fetchrow(_LOCK_INSTANCE, instance_id)
        if row is None:
            return None
        # A separate statement, so that it sees what the previous lock holder committed.
        running = await self._conn.fetch(_RUNNING_EXECUTIONS, instance_id)
        return rows.instance_from_row(row), [rows.execution_from_row(r) for r in running]

    async def lock_job(self, job_id: str) -> Job | None:
        row = await self._conn.fetchrow(_LOCK_JOB, job_id)
        return None if row is None else rows.job_from_row(row)

    async def open_user_task(self, instance_id: str, step_id: str) -> UserTask | None:
        row = await self._conn.fetchrow(_OPEN_USER_TASK, instance_id, step_id)
        return None if row is None else rows.user_task_from_row(row)

    async def lock_timer(self, timer_id: str) -> Timer | None:
        row = await self._conn.fetchrow(_LOCK_TIMER, timer_id)
        return None if row is None else rows.timer_from_row(row)

    # jobs (dispatch)

    async def claim_jobs(
        self,
        *,
        worker_id: str,
        job_types: Sequence[str],
        limit: int,
        now: dt.datetime,
        lease_expires_at: dt.datetime,
    ) -> list[Job]:
        if limit <= 0 or not job_types:
            return []
        records = await self._conn.fetch(
            _CLAIM_JOBS, worker_id, now, lease_expires_at, list(job_types), limit
        )
        # RETURNING gives no order guarantee; pollers expect the oldest job first.
        return _by_age([rows.job_from_row(r) for r in records])

    async def extend_lease(
        self, *, job_id: str, worker_id: str, lease_expires_at: dt.datetime
    ) -> dt.datetime | None:
        expires: dt.datetime | None = await self._conn.fetchval(
            _EXTEND_LEASE, job_id, worker_id, lease_expires_at
        )
        return expires

    async def reclaim_expired_leases(self, *, now: dt.datetime, limit: int) -> list[Job]:
        """The reclaimed jobs as they were: ``LOCKED``, with the expired lease and its worker."""
        if limit <= 0:
            return []
        jobs = [
            rows.job_from_row(r)
            for r in await self._conn.fetch(_RECLAIM_EXPIRED_LEASES, now, limit)
        ]
        if jobs:
            await self._conn.execute(_NOTIFY_JOB_TYPES, sorted({job.job_type for job in jobs}))
        return _by_age(jobs)

    async def due_timers(self, *, now: dt.datetime, limit: int) -> list[Timer]:
        if limit <= 0:
            return []
        return [rows.timer_from_row(r) for r in await self._conn.fetch(_DUE_TIMERS, now, limit)]

    # writes

    async def apply(self, commands: Sequence[Command], *, audit: bool) -> None:
        statements = [s for c in commands if (s := _statement(c, audit=audit)) is not None]
        # Audit rows reference nothing: writing them last, together, saves round trips.
        statements.sort(key=lambda s: s[0] is _INSERT_AUDIT)
        # Consecutive runs of one statement go in a single executemany round trip; the order
        # of the other commands is kept (inserts reference rows inserted just before them).
        for query, run in itertools.groupby(statements, key=lambda s: s[0]):
            args = [a for _, a in run]
            if len(args) == 1:
                await self._conn.execute(query, *args[0])
            else:
                await self._conn.executemany(query, args)


def _statement(command: Command, *, audit: bool) -> _Statement | None:
    """The one statement that persists ``command``; ``None`` when it is not written."""
    match command:
        case InsertInstance(instance=i):
            return _INSERT_INSTANCE, (
                i.id,
                i.definition_id,
                i.definition_version,
                i.status.value,
                list(i.current_step_ids),
                i.variables,
                i.join_arrivals,
                i.step_attempts,
                i.started_at,
                i.completed_at,
                i.failure_reason,
                i.business_key,
            )
        case SaveInstance(instance=i):
            return _SAVE_INSTANCE, (
                i.id,
                i.status.value,
                list(i.current_step_ids),
                i.variables,
                i.join_arrivals,
                i.step_attempts,
                i.completed_at,
                i.failure_reason,
            )
        case InsertExecution(execution=e, input_snapshot=snapshot, output_snapshot=output):
            return _INSERT_EXECUTION, (
                e.id,
                e.instance_id,
                e.step_id,
                e.step_type,
                e.attempt_number,
                e.status.value,
                e.started_at,
                e.ended_at,
                e.failure_reason,
                snapshot,
                output,
            )
        case FinishExecution():
            return _FINISH_EXECUTION, (
                command.execution_id,
                command.status.value,
                command.ended_at,
                command.failure_reason,
                command.output_snapshot,
            )
        case InsertJob(job=j):
            return _INSERT_JOB, (
                j.id,
                j.instance_id,
                j.step_execution_id,
                j.step_id,
                j.job_type,
                j.status.value,
                j.worker_id,
                j.locked_at,
                j.lock_expires_at,
                j.retries_remaining,
                j.payload,
                j.created_at,
            )
        case CompleteJob():
            return _COMPLETE_JOB, (command.job_id, command.worker_id, command.at)
        case RetryJob():
            return _RETRY_JOB, (command.job.id, command.retries_remaining)
        case FailJob():
            return _FAIL_JOB, (command.job_id, command.worker_id, command.at)
        case InsertUserTask(task=t):
            return _INSERT_USER_TASK, (
                t.id,
                t.instance_id,
                t.step_execution_id,
                t.step_id,
                t.status.value,
                t.payload,
                t.created_at,
            )
        case CompleteUserTask():
            return _COMPLETE_USER_TASK, (
                command.task_id,
                command.result,
                command.completed_by,
                command.at,
            )
        case InsertTimer(timer=t):
            return _INSERT_TIMER, (
                t.id,
                t.instance_id,
                t.step_execution_id,
                t.target_step_id,
                t.fire_at,
                t.interrupting,
                t.status.value,
            )
        case MarkTimerFired():
            return _MARK_TIMER_FIRED, (command.timer_id,)
        case CancelOpenWork():
            execution_ids = None if command.execution_ids is None else list(command.execution_ids)
            return _CANCEL_OPEN_WORK, (
                command.instance_id,
                command.at,
                execution_ids,
                command.timers_only,
            )
        case Audit(entry=entry):
            if not audit:
                return None
            return _INSERT_AUDIT, (entry.actor, entry.kind, entry.instance_id, entry.detail)
        case ChainNext():
            return None  # the service starts the chained instance after commit
        case _:
            assert_never(command)


class _JobListener:
    """One ``LISTEN`` connection per store, (re)opened in the background, and its waiters.

    While the connection is down, waiters simply run into their timeouts. Every (re)connect
    wakes all waiters, since notifications sent while nobody listened are lost.
    """

    def __init__(
        self, pool: Pool, *, health_interval: float, reconnect_delay: tuple[float, float]
    ) -> None:
        self._pool = pool
        self._health_interval = health_interval
        self._min_delay, self._max_delay = reconnect_delay
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def start(self) -> None:
        if self._task is None and not self._closed:
            self._task = asyncio.create_task(self._run(), name="rochallor-job-listener")

    async def wait_connected(self, seconds: float) -> bool:
        self.start()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._connected.wait()
        return self.connected

    async def wait(self, job_types: Sequence[str], seconds: float) -> None:
        event = asyncio.Event()
        types = set(job_types)
        for job_type in types:
            self._waiters.setdefault(job_type, set()).add(event)
        try:
            self.start()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(seconds, 0)):
                    await event.wait()
        finally:
            for job_type in types:
                waiting = self._waiters.get(job_type)
                if waiting is not None:
                    waiting.discard(event)
                    if not waiting:
                        del self._waiters[job_type]

    async def close(self) -> None:
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._wake_all()

    def _wake_all(self) -> None:
        for events in self._waiters.values():
            for event in events:
                event.set()

    def _on_notification(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        for event in self._waiters.get(str(payload), ()):
            event.set()

    async def _run(self) -> None:
        delay = self._min_delay
        while not self._closed:
            try:
                await self._listen_once()
                delay = self._min_delay  # it was up: retry promptly
            except Exception as exc:  # any failure means: reconnect later
                log.warning("job listener: %s; reconnecting in %.1fs", exc, delay)
                delay_now, delay = delay, min(delay * 2, self._max_delay)
                await asyncio.sleep(delay_now)
            else:
                await asyncio.sleep(delay)

    async def _listen_once(self) -> None:
        """Listen on one pooled connection until it breaks (or the task is cancelled)."""
        conn = await self._pool.acquire()
        lost = asyncio.Event()

        def on_lost(_conn: object) -> None:
            lost.set()

        healthy = False
        try:
            conn.add_termination_listener(on_lost)
            await conn.add_listener(JOBS_CHANNEL, self._on_notification)
            healthy = True
            self._connected.set()
            log.info("job listener: listening on %s", JOBS_CHANNEL)
            self._wake_all()
            await self._watch(conn, lost)
            healthy = False
            log.warning("job listener: connection lost")
        finally:
            self._connected.clear()
            await self._release(conn, on_lost, healthy=healthy)

    async def _watch(self, conn: PoolConnectionProxy[Any], lost: asyncio.Event) -> None:
        """Return when the connection is gone or stops answering."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._health_interval):
                    await lost.wait()
                    return
            # A silently dropped TCP connection delivers nothing: probe it now and then.
            try:
                await conn.execute(_PING, timeout=min(self._health_interval, 10))
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError):
                return

    async def _release(
        self,
        conn: PoolConnectionProxy[Any],
        on_lost: Callable[[Any], None],
        *,
        healthy: bool,
    ) -> None:
        """Give a working connection back to the pool; close a broken one."""
        try:
            conn.remove_termination_listener(on_lost)
            if not healthy:
                conn.terminate()
                return
            await conn.remove_listener(JOBS_CHANNEL, self._on_notification)
            await self._pool.release(conn, timeout=10)
        except asyncpg.InterfaceError:
            # A connection that died has already left the pool (its proxy is detached).
            pass
        except (asyncpg.PostgresError, OSError, TimeoutError):
            with contextlib.suppress(asyncpg.InterfaceError):
                conn.terminate()


class PostgresStore:
    """The store over an asyncpg pool (see :func:`create_pool`); ``close()`` before the pool."""

    def __init__(
        self,
        pool: Pool,
        *,
        listener_health_interval: float = 30.0,
        listener_reconnect_delay: tuple[float, float] = (0.2, 5.0),
    ) -> None:
        self._pool = pool
        self._listener = _JobListener(
            pool,
            health_interval=listener_health_interval,
            reconnect_delay=listener_reconnect_delay,
        )

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[PostgresTransaction]:
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                yield PostgresTransaction(conn)
        except (asyncpg.DeadlockDetectedError, asyncpg.SerializationError) as exc:
            # Rolled back whole; the service runs the operation again.
            raise TransientStorageError(str(exc)) from exc

    @contextlib.asynccontextmanager
    async def autocommit(self) -> AsyncIterator[PostgresTransaction]:
        try:
            async with self._pool.acquire() as conn:
                yield PostgresTransaction(conn)
        except (asyncpg.DeadlockDetectedError, asyncpg.SerializationError) as exc:
            raise TransientStorageError(str(exc)) from exc

    @contextlib.asynccontextmanager
    async def advisory_lock(self, key: int) -> AsyncIterator[bool]:
        async with self._pool.acquire() as conn:
            if await conn.fetchval(_TRY_ADVISORY_LOCK, key):
                try:
                    yield True
                finally:
                    await _unlock(conn, key)
                return
        # Not taken: give the connection back before the caller's (skipped) tick.
        yield False

    async def wait_for_jobs(self, job_types: Sequence[str], timeout: float) -> None:  # noqa: ASYNC109
        await self._listener.wait(job_types, timeout)

    async def listen(self, within: float = 10.0) -> bool:
        """Start the job listener now and wait until it listens; ``False`` on timeout.

        Optional: :meth:`wait_for_jobs` starts the listener on first use.
        """
        return await self._listener.wait_connected(within)

    async def close(self) -> None:
        await self._listener.close()


async def _unlock(conn: PoolConnectionProxy[Any], key: int) -> None:
    try:
        await conn.fetchval(_ADVISORY_UNLOCK, key)
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
        # The session is gone, and its locks with it; the pool's reset unlocks all otherwise.
        log.warning("advisory unlock of %d failed: %s", key, exc)


if TYPE_CHECKING:
    # mypy proves here that the classes satisfy the service ports.
    def _conforms(
        store: PostgresStore, tx: PostgresTransaction
    ) -> tuple[ports.Store, ports.Transaction]:
        return store, tx


__all__ = ["JOBS_CHANNEL", "PostgresStore", "PostgresTransaction", "create_pool", "like_pattern"]
