"""The PostgreSQL store: :class:`PostgresStore` implements :class:`service.ports.Store`.

It owns the pool's use: a session (each statement commits on its own) or a transaction on one
pooled connection, both running :class:`.session.PostgresSession`; the mapping of a database
that is away to :class:`StorageUnavailable` (503) and of a deadlock or serialisation failure
to :class:`TransientStorageError` (the service runs the operation again); the sweepers'
advisory locks; the health ping; and the job listener of :mod:`.notifications`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from rochallor_server.errors import StorageUnavailable, TransientStorageError
from rochallor_server.service import ports
from rochallor_server.store.postgres import notifications, outbox
from rochallor_server.store.postgres.session import PostgresSession
from rochallor_server.store.postgres.statements import STATEMENTS

log = logging.getLogger(__name__)

_TRY_ADVISORY_LOCK = STATEMENTS["try_advisory_lock"]
_ADVISORY_UNLOCK = STATEMENTS["advisory_unlock"]
_PING = STATEMENTS["ping"]

# asyncpg's classes are generic only in their stubs, hence the quoted alias.
Pool: TypeAlias = "asyncpg.Pool[Any]"

# What a database that is away looks like from here: the connection refused, reset or lost
# (OSError, SQLSTATE class 08), the server shutting down or starting (57P01-57P03), no
# connection slot left (53300), or a connection asyncpg already knows to be closed.
_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
    asyncpg.InterfaceError,
)
_PING_ERRORS: tuple[type[BaseException], ...] = (*_CONNECTION_ERRORS, TimeoutError)
_PING_TIMEOUT = 2.0


def _outage(exc: BaseException) -> bool:
    # an InterfaceError is a misuse of a connection unless the connection is closed
    return not isinstance(exc, asyncpg.InterfaceError) or "closed" in str(exc)


def _unavailable(exc: BaseException) -> StorageUnavailable:
    return StorageUnavailable(f"database unavailable: {type(exc).__name__}: {exc}".rstrip(": "))


@contextlib.contextmanager
def outage_as_unavailable() -> Iterator[None]:
    """Connection errors of a database that is away raise :class:`StorageUnavailable` (503)."""
    try:
        yield
    except _CONNECTION_ERRORS as exc:
        if not _outage(exc):
            raise
        raise _unavailable(exc) from exc


@contextlib.contextmanager
def _storage_errors() -> Iterator[None]:
    """A deadlock or serialisation failure (rolled back whole) raises
    :class:`TransientStorageError`, so the service runs the operation again; a database that
    is away raises :class:`StorageUnavailable`."""
    try:
        with outage_as_unavailable():
            yield
    except (asyncpg.DeadlockDetectedError, asyncpg.SerializationError) as exc:
        raise TransientStorageError(str(exc)) from exc


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
        self._listener = notifications.JobListener(
            pool,
            health_interval=listener_health_interval,
            reconnect_delay=listener_reconnect_delay,
        )

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[PostgresSession]:
        """Statements on one connection in one transaction, committed when the block ends."""
        with _storage_errors():
            async with self._pool.acquire() as conn, conn.transaction():
                yield PostgresSession(conn)

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[PostgresSession]:
        """Statements on one connection, each committing on its own."""
        with _storage_errors():
            async with self._pool.acquire() as conn:
                yield PostgresSession(conn)

    async def ping(self) -> None:
        """Raise :class:`StorageUnavailable` unless the database answers now."""
        try:
            async with asyncio.timeout(_PING_TIMEOUT):
                async with self._pool.acquire() as conn:
                    await conn.fetchval(_PING)
        except _PING_ERRORS as exc:
            if not _outage(exc):
                raise
            raise _unavailable(exc) from exc

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

    # kafka_outbox mode (service.ports.OutboxStore)

    async def lead_outbox(self, key: int) -> outbox.PostgresOutboxLeadership | None:
        return await outbox.lead_outbox(self._pool, key)

    async def outbox_table_exists(self) -> bool:
        return await outbox.outbox_table_exists(self._pool)

    async def service_task_job_types(self) -> list[str]:
        return await outbox.service_task_job_types(self._pool)


async def _unlock(conn: PoolConnectionProxy[Any], key: int) -> None:
    try:
        await conn.fetchval(_ADVISORY_UNLOCK, key)
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
        # The session is gone, and its locks with it; the pool's reset unlocks all otherwise.
        log.warning("advisory unlock of %d failed: %s", key, exc)


if TYPE_CHECKING:
    # mypy proves here that the classes satisfy the service ports.
    def _conforms(
        store: PostgresStore, tx: PostgresSession
    ) -> tuple[ports.Store, ports.Session, ports.OutboxStore]:
        return store, tx, store
