"""One server per data directory: a second one refuses to start, clearly, and leaves the first
one's PostgreSQL running; a postmaster left by a crashed owner is taken over; a postmaster
this product did not start is never stopped."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from rochallor_server.store.postgres.embedded import EmbeddedPostgres, EmbeddedPostgresError
from rochallor_server.testing import EngineProcess, EngineProcessError


def _answers(dsn: str) -> bool:
    async def ping() -> bool:
        conn = await asyncpg.connect(dsn, timeout=5)
        try:
            return bool(await conn.fetchval("SELECT 1") == 1)
        finally:
            await conn.close()

    return asyncio.run(ping())


def _postmaster(data_dir: Path) -> int:
    return int((data_dir / "postmaster.pid").read_text().split("\n", 1)[0])


@pytest.fixture
def workdir() -> Iterator[Path]:
    """Not pytest's tmp_path: PostgreSQL runs as another user under root, and a pytest session
    starting meanwhile makes pytest's base directory private again."""
    path = Path(tempfile.mkdtemp(prefix="rochallor-datadir-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def first(workdir: Path) -> Iterator[EmbeddedPostgres]:
    pg = EmbeddedPostgres(workdir / "data", ephemeral=True)
    pg.start()
    try:
        yield pg
    finally:
        pg.stop(remove=True)


def test_a_second_owner_is_refused_and_the_first_keeps_running(
    first: EmbeddedPostgres,
) -> None:
    second = EmbeddedPostgres(first.data_dir, ephemeral=True)
    with pytest.raises(EmbeddedPostgresError, match="in use by another running server") as caught:
        second.start()
    assert f"(pid {os.getpid()})" in str(caught.value)
    second.stop()  # what a failed server start does: it must not touch the first's cluster
    assert _answers(first.dsn)


def test_a_second_server_process_exits_with_a_clear_message(
    first: EmbeddedPostgres, workdir: Path
) -> None:
    engine = EngineProcess("", workdir / "second.log", env={"WE_DATA_DIR": str(first.data_dir)})
    engine.env.pop("WE_POSTGRES_DSN")
    with pytest.raises(EngineProcessError, match="exited with"):
        engine.start(timeout=30)
    assert "in use by another running server" in engine.log()
    assert _answers(first.dsn)


def test_a_postmaster_left_by_a_dead_owner_is_taken_over(workdir: Path) -> None:
    data = workdir / "data"
    owner = subprocess.Popen(["sleep", "60"])
    try:
        crashed = EmbeddedPostgres(data, ephemeral=True)
        crashed.start()
        left = _postmaster(data)
        (data / "rochallor-owner.pid").write_text(str(owner.pid))
        crashed._unlock()  # as if its process had been SIGKILLed: the flock goes with it
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.wait()

    successor = EmbeddedPostgres(data, ephemeral=True)
    try:
        dsn = successor.start()
        assert _answers(dsn)
        assert _postmaster(data) != left
    finally:
        successor.stop(remove=True)


def test_a_postmaster_this_product_did_not_start_is_left_alone(workdir: Path) -> None:
    data = workdir / "data"
    foreign = EmbeddedPostgres(data, ephemeral=True)
    foreign.start()
    try:
        (data / "rochallor-owner.pid").unlink()  # started by hand, not by a server
        foreign._unlock()
        other = EmbeddedPostgres(data, ephemeral=True)
        with pytest.raises(EmbeddedPostgresError, match="did not start"):
            other.start()
        assert _answers(foreign.dsn)
    finally:
        foreign._lock()
        foreign.stop(remove=True)
