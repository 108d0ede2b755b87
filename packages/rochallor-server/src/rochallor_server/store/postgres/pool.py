"""The asyncpg pool: JSON codecs and connection settings shared by every store connection."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

import asyncpg
import orjson

from rochallor_server.engine import limits

# Every statement of queries.sql and each apply statement stays prepared on each connection,
# with room for migrations and ad-hoc queries.
STATEMENT_CACHE_SIZE = 256
APPLICATION_NAME = "rochallor-server"
# Every statement of the store is an index lookup or an index-ordered scan, and each is planned
# once per connection (a cached generic plan) - often while the tables are still small, when a
# sequential scan or a hash join over the whole table looks cheaper. Those plans would stay
# while the tables grow (until autovacuum next analyses them), making every event read whole
# tables. Joins as index nested loops are right at every table size, so they are the only kind
# the planner may pick for the engine's sessions.
INDEX_PLANS = {"enable_seqscan": "off", "enable_hashjoin": "off", "enable_mergejoin": "off"}

# orjson handles integers within 64 bits only: it refuses larger ones when encoding and reads
# them as doubles. Any run of 19+ digits (which may be such an integer) sends the text through
# the stdlib parser, which reads 64-bit integers exactly and longer ones as the doubles they
# were stored as (``limits.number_from_text``: jsonb prints ``1e300`` as 301 digits).
_LONG_DIGITS = re.compile(r"\d{19,}")


def encode_json(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:
        # Integers beyond 64 bits (and anything else orjson refuses) fall back to the stdlib.
        return json.dumps(value, separators=(",", ":"), allow_nan=False, default=_iso)


def _iso(value: object) -> str:
    """Timestamps in documents the store builds (orjson writes them the same way)."""
    if isinstance(value, dt.datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def decode_json(text: str) -> Any:
    if _LONG_DIGITS.search(text) is None:
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass  # e.g. nesting deeper than orjson's limit: let the stdlib decide
    return json.loads(text, parse_int=limits.number_from_text)


async def init_connection(conn: asyncpg.Connection[Any]) -> None:
    """Decode ``json``/``jsonb`` to Python values and encode Python values to them."""
    for typename in ("json", "jsonb"):
        await conn.set_type_codec(
            typename,
            schema="pg_catalog",
            encoder=encode_json,
            decoder=decode_json,
            format="text",
        )


async def _keep_session(conn: asyncpg.Connection[Any]) -> None:
    """Skip asyncpg's reset query on release: one round trip per request saved.

    asyncpg still clears listeners and rolls back an open transaction itself; the store keeps
    no other session state (advisory locks are released and ``LISTEN`` undone explicitly).
    """


async def create_pool(dsn: str, min_size: int, max_size: int) -> asyncpg.Pool[asyncpg.Record]:
    """A pool whose connections speak JSON natively.

    Size it for the request load plus the store's long-held connections: one for the job
    listener (:meth:`PostgresStore.wait_for_jobs`) and one per advisory lock held.
    """
    return await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=init_connection,
        statement_cache_size=STATEMENT_CACHE_SIZE,
        reset=_keep_session,
        server_settings={"application_name": APPLICATION_NAME, **INDEX_PLANS},
    )
