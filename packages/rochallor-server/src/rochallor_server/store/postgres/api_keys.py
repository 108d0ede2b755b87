"""API keys in PostgreSQL (:class:`rochallor_server.auth.KeyStore`) and the revocation
listener that keeps every replica's key cache honest.

A revocation notifies channel ``rochallor_api_keys`` (payload: the key id) in its own
transaction. Each server listens on one dedicated connection and evicts the key as the
notification arrives; while that connection is down the key cache is off (every request reads
its key), so a revocation is never missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from typing import Any

import asyncpg

from rochallor_server.auth import AccessControl, ApiKey, Role, StoredKey
from rochallor_server.store.postgres import statements
from rochallor_server.store.postgres.store import outage_as_unavailable

log = logging.getLogger(__name__)

KEYS_CHANNEL = "rochallor_api_keys"

_Q = statements.load("api_keys.sql")
_INSERT = _Q["insert_api_key"]
_GET = _Q["get_api_key"]
_LIST = _Q["list_api_keys"]
_REVOKE = _Q["revoke_api_key"]
_HAS_ACTIVE = _Q["has_active_api_keys"]


def key_from_row(row: asyncpg.Record) -> ApiKey:
    job_types = row["job_types"]
    return ApiKey(
        id=row["id"],
        name=row["name"],
        role=Role(row["role"]),
        job_types=None if job_types is None else frozenset(job_types),
        created_at=row["created_at"],
        created_by=row["created_by"],
        revoked_at=row["revoked_at"],
    )


class PostgresKeyStore:
    def __init__(self, pool: asyncpg.Pool[Any]) -> None:
        self.pool = pool

    async def insert_key(self, key: ApiKey, secret_sha256: bytes) -> None:
        with outage_as_unavailable():
            job_types = None if key.job_types is None else sorted(key.job_types)
            await self.pool.execute(
                _INSERT,
                key.id,
                key.name,
                key.role.value,
                job_types,
                secret_sha256,
                key.created_at,
                key.created_by,
            )

    async def get_key(self, key_id: str) -> StoredKey | None:
        with outage_as_unavailable():
            row = await self.pool.fetchrow(_GET, key_id)
            if row is None:
                return None
            return StoredKey(key=key_from_row(row), secret_sha256=bytes(row["secret_sha256"]))

    async def list_keys(self) -> list[ApiKey]:
        with outage_as_unavailable():
            return [key_from_row(row) for row in await self.pool.fetch(_LIST)]

    async def revoke_key(self, key_id: str, at: dt.datetime) -> ApiKey | None:
        with outage_as_unavailable():
            row = await self.pool.fetchrow(_REVOKE, key_id, at)
            return None if row is None else key_from_row(row)

    async def has_active_keys(self) -> bool:
        with outage_as_unavailable():
            return bool(await self.pool.fetchval(_HAS_ACTIVE))


class RevocationListener:
    """``start()`` / ``stop()``: evict revoked keys from ``access``'s cache as they are revoked
    anywhere; the cache is live only while the listening connection is up."""

    def __init__(
        self,
        dsn: str,
        access: AccessControl,
        *,
        reconnect_delay: float = 1.0,
        health_interval: float = 30.0,
    ) -> None:
        self.dsn = dsn
        self.access = access
        self.reconnect_delay = reconnect_delay
        self.health_interval = health_interval
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="api-key-listener")

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.access.set_cache_live(False)

    async def _run(self) -> None:
        while not self._stop.is_set():
            try:
                await self._listen_once()
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("API key listener: %s; key cache off until reconnected", exc)
            self.access.set_cache_live(False)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.reconnect_delay):
                    await self._stop.wait()

    def _on_notification(self, _conn: Any, _pid: int, _channel: str, payload: object) -> None:
        self.access.evict(str(payload))

    async def _listen_once(self) -> None:
        conn = await asyncpg.connect(self.dsn)
        lost = asyncio.Event()
        try:
            conn.add_termination_listener(lambda _c: lost.set())
            await conn.add_listener(KEYS_CHANNEL, self._on_notification)
            self.access.set_cache_live(True)  # clears what may have been missed
            while not lost.is_set():
                try:
                    async with asyncio.timeout(self.health_interval):
                        await lost.wait()
                except TimeoutError:
                    # A silently dead connection fires no termination callback: ping it.
                    await conn.execute("SELECT 1", timeout=min(self.health_interval, 10))
        finally:
            self.access.set_cache_live(False)
            with contextlib.suppress(Exception):
                await conn.close()
