"""Migrations: applying them all yields exactly ``schema.sql``; they apply once, even when raced."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from importlib import resources
from typing import Any

import asyncpg
import pytest

from rochallor_server.store.postgres import migrate
from rochallor_server.testing import TestCluster

# Each query yields rows that describe one aspect of the public schema in a form independent
# of creation order and of OIDs; equal results mean equal schemas.
CATALOG: dict[str, str] = {
    "relations": """
        SELECT c.relname, c.relkind::text, c.relpersistence::text, coalesce(c.reloptions, '{}')
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public'
        ORDER BY 1
    """,
    "columns": """
        SELECT c.relname,
               row_number() OVER (PARTITION BY c.oid ORDER BY a.attnum),
               a.attname,
               format_type(a.atttypid, a.atttypmod),
               a.attnotnull,
               pg_get_expr(d.adbin, d.adrelid),
               a.attidentity::text,
               a.attgenerated::text,
               coll.collname
        FROM pg_attribute a
        JOIN pg_class c ON c.oid = a.attrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        LEFT JOIN pg_collation coll ON coll.oid = a.attcollation AND a.attcollation <> 0
        WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
          AND a.attnum > 0 AND NOT a.attisdropped
        ORDER BY 1, 2
    """,
    "constraints": """
        SELECT conrelid::regclass::text, conname, contype::text, pg_get_constraintdef(oid),
               condeferrable, condeferred
        FROM pg_constraint
        WHERE connamespace = 'public'::regnamespace
        ORDER BY 1, 2
    """,
    "indexes": """
        SELECT c.relname, pg_get_indexdef(i.indexrelid), i.indisunique, i.indisprimary
        FROM pg_index i
        JOIN pg_class c ON c.oid = i.indexrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public'
        ORDER BY 1
    """,
    "sequences": """
        SELECT s.seqrelid::regclass::text, format_type(s.seqtypid, NULL), s.seqstart,
               s.seqincrement, s.seqmax, s.seqmin, s.seqcache, s.seqcycle,
               owner.relname, a.attname
        FROM pg_sequence s
        JOIN pg_class c ON c.oid = s.seqrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_depend dep ON dep.objid = s.seqrelid
             AND dep.classid = 'pg_class'::regclass AND dep.deptype IN ('a', 'i')
        LEFT JOIN pg_class owner ON owner.oid = dep.refobjid
        LEFT JOIN pg_attribute a ON a.attrelid = dep.refobjid AND a.attnum = dep.refobjsubid
        WHERE n.nspname = 'public'
        ORDER BY 1
    """,
    "triggers": """
        SELECT tgrelid::regclass::text, tgname, pg_get_triggerdef(t.oid)
        FROM pg_trigger t
        JOIN pg_class c ON c.oid = t.tgrelid
        WHERE c.relnamespace = 'public'::regnamespace AND NOT t.tgisinternal
        ORDER BY 1, 2
    """,
    "functions": """
        SELECT p.proname, pg_get_function_identity_arguments(p.oid), pg_get_functiondef(p.oid)
        FROM pg_proc p
        WHERE p.pronamespace = 'public'::regnamespace AND p.prokind IN ('f', 'p')
        ORDER BY 1, 2
    """,
    "views": """
        SELECT c.relname, pg_get_viewdef(c.oid)
        FROM pg_class c
        WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('v', 'm')
        ORDER BY 1
    """,
    "types": """
        SELECT t.typname, t.typtype::text, format_type(t.typbasetype, t.typtypmod), t.typnotnull,
               coalesce(
                   (SELECT array_agg(e.enumlabel ORDER BY e.enumsortorder)
                    FROM pg_enum e WHERE e.enumtypid = t.oid),
                   '{}'
               )
        FROM pg_type t
        WHERE t.typnamespace = 'public'::regnamespace AND t.typtype IN ('e', 'd')
        ORDER BY 1
    """,
    "comments": """
        SELECT d.objoid::regclass::text, d.objsubid, d.description
        FROM pg_description d
        JOIN pg_class c ON c.oid = d.objoid
        WHERE d.classoid = 'pg_class'::regclass AND c.relnamespace = 'public'::regnamespace
        ORDER BY 1, 2
    """,
    "applied_migrations": "SELECT version FROM schema_migrations ORDER BY 1",
}


async def snapshot(dsn: str) -> dict[str, list[tuple[Any, ...]]]:
    conn = await asyncpg.connect(dsn)
    try:
        return {name: [tuple(r) for r in await conn.fetch(sql)] for name, sql in CATALOG.items()}
    finally:
        await conn.close()


def schema_sql() -> str:
    folder = resources.files("rochallor_server.store.postgres")
    return folder.joinpath("schema.sql").read_text(encoding="utf-8")


@pytest.fixture
def empty_database(pg_cluster: TestCluster) -> Iterator[Callable[[], str]]:
    """A factory of empty databases (not cloned from the migrated template)."""
    created: list[str] = []

    def make() -> str:
        name = f"mig_{uuid.uuid4().hex[:12]}"
        pg_cluster.psql(f"CREATE DATABASE {name}")
        created.append(name)
        return pg_cluster.dsn_for(name)

    yield make
    for name in created:
        pg_cluster.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
async def migrated_dsn(empty_database: Callable[[], str]) -> AsyncIterator[str]:
    dsn = empty_database()
    await migrate.migrate_dsn(dsn)
    yield dsn


async def test_schema_sql_equals_the_migrated_schema(
    migrated_dsn: str, empty_database: Callable[[], str]
) -> None:
    from_snapshot = empty_database()
    conn = await asyncpg.connect(from_snapshot)
    try:
        await conn.execute(schema_sql())
    finally:
        await conn.close()

    migrated = await snapshot(migrated_dsn)
    expected = await snapshot(from_snapshot)
    for aspect in CATALOG:
        assert migrated[aspect] == expected[aspect], f"{aspect} differs from schema.sql"
    tables = {r[0] for r in migrated["relations"] if r[1] == "r"}
    assert {"job", "workflow_instance", "schema_migrations"} <= tables
    assert migrated["applied_migrations"] == [(v,) for v, _ in migrate.migration_files()]


async def test_migrate_is_idempotent(empty_database: Callable[[], str]) -> None:
    dsn = empty_database()
    everything = [version for version, _ in migrate.migration_files()]
    assert await migrate.migrate_dsn(dsn) == everything
    before = await snapshot(dsn)
    assert await migrate.migrate_dsn(dsn) == []
    assert await snapshot(dsn) == before


async def test_concurrent_migrations_apply_once(empty_database: Callable[[], str]) -> None:
    dsn = empty_database()
    everything = [version for version, _ in migrate.migration_files()]
    first, second = await asyncpg.connect(dsn), await asyncpg.connect(dsn)
    try:
        results = await asyncio.gather(migrate.migrate(first), migrate.migrate(second))
        applied = await first.fetch("SELECT version FROM schema_migrations ORDER BY version")
    finally:
        await first.close()
        await second.close()
    assert sorted(results, key=len) == [[], everything]
    assert [r["version"] for r in applied] == everything
