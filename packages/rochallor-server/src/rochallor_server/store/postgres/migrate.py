"""Forward-only migrations: numbered ``migrations/NNNN_name.sql`` files.

Applied at startup in order, one transaction per file, under a session advisory lock so that
replicas starting together migrate once. Applied versions are recorded in
``schema_migrations``.
"""

from __future__ import annotations

import asyncio
import logging
from importlib import resources
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

log = logging.getLogger(__name__)

# "rochmigr" as a 64-bit advisory lock key.
MIGRATION_LOCK_KEY = 0x726F63686D696772


def migration_files() -> list[tuple[str, str]]:
    """``(version, sql)`` pairs in apply order."""
    folder = resources.files(__package__).joinpath("migrations")
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".sql")), key=lambda f: f.name)
    return [(f.name.removesuffix(".sql"), f.read_text(encoding="utf-8")) for f in files]


async def migrate(conn: asyncpg.Connection[Any] | PoolConnectionProxy[Any]) -> list[str]:
    """Apply pending migrations; return the versions applied now."""
    applied_now: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for version, sql in migration_files():
            if version in done:
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)
            log.info("applied migration %s", version)
            applied_now.append(version)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
    return applied_now


async def migrate_dsn(dsn: str) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        return await migrate(conn)
    finally:
        await conn.close()


def migrate_sync(dsn: str) -> list[str]:
    """Blocking form for test fixtures and tools."""
    return asyncio.run(migrate_dsn(dsn))
