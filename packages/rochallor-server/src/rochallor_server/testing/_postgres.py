"""Throwaway embedded PostgreSQL clusters for tests, with a migrated template database.

A cluster is started once per test session; each test gets a fresh database cloned from the
template (``CREATE DATABASE … TEMPLATE``). The next database is cloned in the background while
a test runs, and a used one is dropped in the background, so a test rarely waits for either.
"""

from __future__ import annotations

import itertools
import subprocess
import tempfile
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from rochallor_server.store.postgres.embedded import EmbeddedPostgres, reap_orphans

PREFIX = "rochallor-pg-"
TEMPLATE = "rochallor_template"


class TestCluster:
    """An ephemeral cluster: ``start()``, ``new_database()`` per test, ``stop()`` at the end."""

    __test__ = False  # not a pytest test class

    def __init__(self) -> None:
        reap_orphans(Path(tempfile.gettempdir()), PREFIX)
        self.server = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix=PREFIX)), ephemeral=True)
        self._counter = itertools.count(1)
        self._template_ready = False
        # One worker: clones and drops run one at a time, in the order asked.
        self._background = ThreadPoolExecutor(max_workers=1, thread_name_prefix="test-cluster")
        self._next: Future[str] | None = None

    def start(self) -> str:
        return self.server.start()

    def stop(self) -> None:
        self._background.shutdown(wait=True, cancel_futures=True)
        self.server.stop(remove=True)

    @property
    def dsn(self) -> str:
        return self.server.dsn

    def dsn_for(self, database: str) -> str:
        return self.server.dsn.rsplit("/", 1)[0] + "/" + database

    def psql(self, sql: str, database: str = "postgres") -> str:
        psql = self.server._bin / "psql"
        result = subprocess.run(
            [
                str(psql),
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                self.dsn_for(database),
                "-c",
                sql,
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        if result.returncode != 0:
            raise RuntimeError(f"psql failed: {result.stderr.strip()}")
        return result.stdout

    def prepare_template(self, migrate: Callable[[str], None] | None) -> None:
        """Create the template database and apply ``migrate(dsn)`` to it once."""
        if self._template_ready:
            return
        self.psql(f"CREATE DATABASE {TEMPLATE}")
        if migrate is not None:
            migrate(self.dsn_for(TEMPLATE))
        self._template_ready = True

    def new_database(self) -> str:
        """A fresh database cloned from the template; returns its DSN.

        The template must be ready (:meth:`prepare_template`). The clone handed out was made
        in the background after the previous call, and the next one is started now.
        """
        ready, self._next = self._next, None
        name = ready.result() if ready is not None else self._clone()
        self._next = self._background.submit(self._clone)
        return self.dsn_for(name)

    def _clone(self) -> str:
        name = f"test_{next(self._counter)}"
        self.psql(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
        return name

    def drop_database(self, dsn: str) -> None:
        """Drop a database handed out by :meth:`new_database` (in the background: nothing may
        use it any more)."""
        name = dsn.rsplit("/", 1)[1]
        self._background.submit(self.psql, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
