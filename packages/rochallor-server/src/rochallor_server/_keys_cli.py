"""``rochallor-server keys create|list|revoke``: manage API keys in the engine's database.

Works against ``WE_POSTGRES_DSN``, or the embedded PostgreSQL in ``WE_DATA_DIR``: a running
engine's cluster is reached on its port with its password; a stopped one is started for the
command and stopped again. A revocation is seen at once by every running engine (it is
notified through the database).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import asyncpg

from rochallor_server import auth
from rochallor_server.config import Settings
from rochallor_server.errors import RochallorError
from rochallor_server.store.postgres import migrate
from rochallor_server.store.postgres.api_keys import PostgresKeyStore
from rochallor_server.store.postgres.embedded import PASSWORD_FILE, EmbeddedPostgres


def add_parser(subparsers: Any) -> None:
    keys = subparsers.add_parser("keys", help="create, list and revoke API keys")
    actions = keys.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="create a key and print its token (once)")
    create.add_argument("--name", required=True, help="what the key is for")
    create.add_argument(
        "--role", required=True, choices=[r.value for r in auth.Role], help="the key's role"
    )
    create.add_argument(
        "--job-type",
        action="append",
        dest="job_types",
        metavar="TYPE",
        help="worker keys: a job type the key may work on (repeat; default any)",
    )
    actions.add_parser("list", help="list keys (never their secrets)")
    revoke = actions.add_parser("revoke", help="revoke a key: refused at once")
    revoke.add_argument("key_id")
    for parser in (keys, create):
        parser.add_argument("--json", action="store_true", help="print JSON")


def run(args: argparse.Namespace, settings: Settings) -> int:
    try:
        return asyncio.run(_run(args, settings))
    except RochallorError as exc:
        sys.stderr.write(f"rochallor-server keys: {exc.message}\n")
        return 1


async def _run(args: argparse.Namespace, settings: Settings) -> int:
    async with _pool(settings) as pool:
        access = auth.AccessControl(PostgresKeyStore(pool), enforce=True)
        if args.action == "create":
            key, token = await access.create_key(
                name=args.name, role=args.role, job_types=args.job_types, created_by="cli"
            )
            if getattr(args, "json", False):
                _out(json.dumps({**_describe(key), "token": token}))
            else:
                _out(f"created key {key.id} ({key.role.value}); its token, shown only now:")
                _out(token)
        elif args.action == "list":
            for key in await access.list_keys():
                described = _describe(key)
                _out(" ".join(f"{k}={v}" for k, v in described.items()))
        else:
            key = await access.revoke_key(args.key_id)
            _out(f"revoked key {key.id}")
    return 0


def _out(line: str) -> None:
    sys.stdout.write(line + "\n")


def _describe(key: auth.ApiKey) -> dict[str, object]:
    described: dict[str, object] = {
        "id": key.id,
        "name": key.name,
        "role": key.role.value,
        "created": key.created_at.isoformat(),
    }
    if key.job_types is not None:
        described["jobTypes"] = ",".join(sorted(key.job_types))
    described["status"] = "active" if key.revoked_at is None else "revoked"
    return described


@contextlib.asynccontextmanager
async def _pool(settings: Settings) -> AsyncIterator[asyncpg.Pool[Any]]:
    with _database(settings) as dsn:
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
        try:
            async with pool.acquire() as conn:
                await migrate.migrate(conn)
            yield pool
        finally:
            await pool.close()


@contextlib.contextmanager
def _database(settings: Settings) -> Iterator[str]:
    if settings.db.dsn is not None:
        yield settings.db.dsn
        return
    running = _running_embedded(settings.db.data_dir)
    if running is not None:
        yield running
        return
    embedded = EmbeddedPostgres(settings.db.data_dir)
    dsn = embedded.start()
    try:
        yield dsn
    finally:
        embedded.stop()


def _running_embedded(data_dir: Path) -> str | None:
    """The DSN of the engine's running embedded cluster, if it runs."""
    try:
        lines = (data_dir / "postmaster.pid").read_text().splitlines()
        password = (data_dir / PASSWORD_FILE).read_text().strip()
    except OSError:
        return None
    if len(lines) < 4 or not lines[3].strip().isdigit():
        return None
    return f"postgresql://postgres:{quote(password, safe='')}@127.0.0.1:{lines[3].strip()}/postgres"
