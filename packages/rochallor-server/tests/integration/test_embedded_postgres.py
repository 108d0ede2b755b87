from __future__ import annotations

import asyncio
import subprocess

import asyncpg

from rochallor_server.testing import TestCluster


def _postmasters(data_dir: str) -> list[str]:
    out = subprocess.run(
        ["ps", "-ww", "-eo", "args"], capture_output=True, text=True, check=True
    ).stdout
    return [line for line in out.splitlines() if "postgres" in line and data_dir in line]


async def _roundtrip(dsn: str, table: str | None) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        if table:
            await conn.execute(f"CREATE TABLE {table} (x int)")
        rows = await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
        )
        return [r["tablename"] for r in rows]
    finally:
        await conn.close()


def test_two_independent_clusters_and_no_leftover_process() -> None:
    a, b = TestCluster(), TestCluster()
    try:
        dsn_a, dsn_b = a.start(), b.start()
        assert dsn_a != dsn_b
        assert "only_in_a" in asyncio.run(_roundtrip(dsn_a, "only_in_a"))
        assert "only_in_a" not in asyncio.run(_roundtrip(dsn_b, None))
        assert _postmasters(str(a.server.data_dir))
    finally:
        a.stop()
        b.stop()
    assert _postmasters(str(a.server.data_dir)) == []
    assert _postmasters(str(b.server.data_dir)) == []
    assert not a.server.data_dir.exists()


def test_each_test_database_is_a_fresh_migrated_clone(pg_cluster: TestCluster) -> None:
    first = pg_cluster.new_database()
    second = pg_cluster.new_database()
    try:
        tables = asyncio.run(_roundtrip(first, "scratch"))
        assert {"workflow_instance", "job", "schema_migrations", "scratch"} <= set(tables)
        assert "scratch" not in asyncio.run(_roundtrip(second, None))
    finally:
        pg_cluster.drop_database(first)
        pg_cluster.drop_database(second)
