"""The ``kafka_outbox`` relay's storage: a dedicated session holding the relay lock, and its
drain transactions (``kafka-dispatch.md`` §5)."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from rochallor_server.service import ports
from rochallor_server.store.postgres.statements import STATEMENTS

log = logging.getLogger(__name__)

_TRY_ADVISORY_LOCK = STATEMENTS["try_advisory_lock"]
_ADVISORY_UNLOCK = STATEMENTS["advisory_unlock"]
_OUTBOX_BATCH = STATEMENTS["outbox_batch"]
_OUTBOX_DELETE = STATEMENTS["outbox_delete"]
_OUTBOX_AUDIT = STATEMENTS["outbox_audit"]
_OUTBOX_BACKLOG = STATEMENTS["outbox_backlog"]
_OUTBOX_TABLE_EXISTS = STATEMENTS["outbox_table_exists"]
_SERVICE_TASK_JOB_TYPES = STATEMENTS["service_task_job_types"]

# asyncpg's classes are generic only in their stubs, hence the quoted aliases.
_Conn: TypeAlias = "PoolConnectionProxy[Any]"
_Pool: TypeAlias = "asyncpg.Pool[Any]"


class PostgresOutboxBatch:
    def __init__(self, conn: _Conn) -> None:
        self._conn = conn

    async def rows(self, *, held_job_types: Sequence[str], limit: int) -> list[ports.OutboxRow]:
        records = await self._conn.fetch(_OUTBOX_BATCH, list(held_job_types), limit)
        return [
            ports.OutboxRow(
                id=r["id"],
                job_id=r["job_id"],
                instance_id=r["instance_id"],
                job_type=r["job_type"],
                payload=bytes(r["payload"]),
                created_at=r["created_at"],
            )
            for r in records
        ]

    async def published(self, rows: Sequence[ports.OutboxRow], *, audit: bool) -> None:
        if not rows:
            return
        await self._conn.execute(_OUTBOX_DELETE, [row.id for row in rows])
        if audit:
            await self._conn.execute(
                _OUTBOX_AUDIT, [row.instance_id for row in rows], [row.job_id for row in rows]
            )


class PostgresOutboxLeadership:
    """The relay lock's session: a pool connection kept out of the pool while it leads."""

    def __init__(self, pool: _Pool, conn: _Conn, key: int) -> None:
        self._pool = pool
        self._conn = conn
        self._key = key

    @contextlib.asynccontextmanager
    async def batch(self) -> AsyncIterator[PostgresOutboxBatch]:
        async with self._conn.transaction():
            yield PostgresOutboxBatch(self._conn)

    async def backlog(self) -> tuple[int, dt.datetime | None]:
        row = await self._conn.fetchrow(_OUTBOX_BACKLOG)
        assert row is not None  # an aggregate yields one row
        return int(row["backlog"]), row["oldest"]

    async def release(self) -> None:
        try:
            await self._conn.fetchval(_ADVISORY_UNLOCK, self._key, timeout=5)
            await self._pool.release(self._conn, timeout=5)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
            # The session is gone (and its lock with it), or it is stuck: drop it.
            log.info("relay lock session closed: %s", exc)
            with contextlib.suppress(asyncpg.InterfaceError):
                self._conn.terminate()


async def lead_outbox(pool: _Pool, key: int) -> PostgresOutboxLeadership | None:
    conn = await pool.acquire()
    try:
        taken = await conn.fetchval(_TRY_ADVISORY_LOCK, key)
    except BaseException:
        await pool.release(conn)
        raise
    if not taken:
        await pool.release(conn)
        return None
    return PostgresOutboxLeadership(pool, conn, key)


async def outbox_table_exists(pool: _Pool) -> bool:
    async with pool.acquire() as conn:
        return bool(await conn.fetchval(_OUTBOX_TABLE_EXISTS))


async def service_task_job_types(pool: _Pool) -> list[str]:
    async with pool.acquire() as conn:
        return [r["job_type"] for r in await conn.fetch(_SERVICE_TASK_JOB_TYPES)]


if TYPE_CHECKING:

    def _conforms(
        lead: PostgresOutboxLeadership, batch: PostgresOutboxBatch
    ) -> tuple[ports.OutboxLeadership, ports.OutboxBatch]:
        return lead, batch
