"""Each column of the apply statement's document is declared once: by the ``jsonb_to_recordset``
column list that reads its kind in the kind's first fragment of apply.sql (``apply.COLUMNS``).
Everything else that spells it is held to that declaration here: the other reads of the kind,
the INSERT column lists and their SELECT lists, the SET and WHERE pairings, the schema's column
types (on the migrated PostgreSQL), and the rows the builder makes."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import TypeAlias

import asyncpg
import pytest
from asyncpg.pool import PoolConnectionProxy

from rochallor_server.engine.commands import Command, InsertExecution, InsertInstance, InsertJob
from rochallor_server.store.postgres import apply, create_pool

from .records import make_execution, make_instance, make_job

Conn: TypeAlias = "PoolConnectionProxy[asyncpg.Record]"

# The fragment of each block, and the kinds of rows each reads.
FRAGMENTS = {
    block: apply._FRAGMENT_SQL[block] for blocks in apply._KINDS.values() for block in blocks
}
_TARGET = re.compile(r"^\w+ AS \(\s*(?:--[^\n]*\n\s*)*(?:INSERT INTO|UPDATE) (\w+)")
_INSERT = re.compile(
    r"INSERT INTO \w+\s*\(([^)]*)\)\s*SELECT (.*?)\s+FROM jsonb_to_recordset", re.DOTALL
)
# `column = x.name`, `column IS NOT DISTINCT FROM x.name`, `column = coalesce(x.name, …)`
_PAIR = re.compile(r"(?:\w+\.)?(\w+) (?:=|IS NOT DISTINCT FROM) (?:coalesce\()?x\.(\w+)\b")
# Columns the SQL converts on the way in, with why.
CONVERTED = {
    # bytes travel in the JSON document as base64
    ("outbox", "payload"): "decode(x.payload, 'base64')",
}
# Columns the SQL fills itself instead of reading them from the document.
FILLED = {("outbox", "created_at"): "now()"}
GUARDS = {"g", "j"}


def _split(text: str) -> list[str]:
    """The items of a comma-separated list, commas inside parentheses kept."""
    items, depth, start = [], 0, 0
    for index, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            items.append(text[start:index].strip())
            start = index + 1
    return [*items, text[start:].strip()]


def _own_kind(block: str) -> str:
    return next(kind for kind, blocks in apply._KINDS.items() if block in blocks)


@pytest.fixture
async def conn(pg_dsn: str) -> AsyncIterator[Conn]:
    pool = await create_pool(pg_dsn, 1, 1)
    async with pool.acquire() as conn:
        yield conn
    await pool.close()


async def _table_types(conn: Conn, table: str) -> dict[str, str]:
    rows = await conn.fetch(
        """
        SELECT column_name, udt_name::text::regtype::text AS type
        FROM information_schema.columns
        WHERE table_schema = 'public' AND table_name = $1
        """,
        table,
    )
    assert rows, f"no table {table} in the migrated schema"
    return {row["column_name"]: row["type"] for row in rows}


async def _normalised(conn: Conn, declared: str) -> str:
    normalised: str = await conn.fetchval("SELECT $1::regtype::text", declared)
    return normalised


def test_every_kind_is_declared_and_every_other_read_agrees() -> None:
    assert apply.COLUMNS.keys() == apply._KINDS.keys()
    reads = 0
    for block, sql in FRAGMENTS.items():
        for kind, columns in apply.recordset_columns(sql):
            reads += 1
            declared = apply.COLUMNS[kind]
            assert columns.items() <= declared.items(), f"{block} reads {kind} as {columns}"
            if block == apply._KINDS[kind][0]:
                assert columns == declared
    # the cancellations also read the ids of job_ends, job_retries, task_completions and
    # timers_fired rows, to skip the rows the statement ends otherwise
    assert reads == len(apply._KINDS) + 4


def test_every_declared_column_is_used_by_its_fragments() -> None:
    for kind, blocks in apply._KINDS.items():
        text = "\n".join(FRAGMENTS[block] for block in blocks)
        used = set(re.findall(r"\bx\.(\w+)", text))
        unused = apply.COLUMNS[kind].keys() - used
        assert not unused, f"{kind} declares columns no fragment reads: {sorted(unused)}"
        assert {"g", "j"} & apply.COLUMNS[kind].keys() <= used


def test_insert_column_lists_match_their_select_lists() -> None:
    inserts = 0
    for block, sql in FRAGMENTS.items():
        match = _INSERT.search(sql)
        if match is None:
            continue
        inserts += 1
        kind = _own_kind(block)
        columns, selected = _split(match.group(1)), _split(match.group(2))
        assert len(columns) == len(selected), block
        assert len(set(columns)) == len(columns), block
        for column, expression in zip(columns, selected, strict=True):
            expected = CONVERTED.get((kind, column)) or FILLED.get((kind, column)) or f"x.{column}"
            assert expression == expected, f"{block}: {column} from {expression}"
        declared = apply.COLUMNS[kind].keys() - GUARDS
        assert declared == set(columns) - {c for k, c in FILLED if k == kind}, block
    assert inserts == 8


async def test_declared_types_are_the_schema_types_of_the_columns_they_write(
    conn: Conn,
) -> None:
    checked: set[tuple[str, str]] = set()
    for block, sql in FRAGMENTS.items():
        target = _TARGET.match(sql)
        if target is None:
            assert block == "apply_cancels", f"{block}: neither an INSERT nor an UPDATE"
            continue
        kind, table = _own_kind(block), target.group(1)
        declared = apply.COLUMNS[kind]
        schema = await _table_types(conn, table)
        insert = _INSERT.search(sql)
        pairs = (
            [(column, column) for column in _split(insert.group(1))]
            if insert is not None
            else _PAIR.findall(sql)
        )
        for column, name in pairs:
            if (kind, name) in FILLED or name not in declared:
                continue  # filled by the SQL, or (cancellations) read from another kind
            assert column in schema, f"{block}: no column {table}.{column}"
            declared_type = await _normalised(conn, declared[name])
            if (kind, name) in CONVERTED:
                assert (declared_type, schema[column]) == ("text", "bytea"), block
            else:
                assert declared_type == schema[column], f"{block}: {column} {declared[name]}"
            checked.add((kind, name))
    for kind, columns in apply.COLUMNS.items():
        if kind == "cancels":  # a selection, no table of its own: the cancellations use it
            continue
        unchecked = {name for name in columns if (kind, name) not in checked} - GUARDS
        assert not unchecked, f"{kind}: columns never checked against the schema: {unchecked}"


async def test_guard_columns_have_the_type_of_the_ids_they_name(
    conn: Conn,
) -> None:
    instance_id = (await _table_types(conn, "workflow_instance"))["id"]
    job_id = (await _table_types(conn, "job"))["id"]
    for columns in apply.COLUMNS.values():
        if "g" in columns:
            assert await _normalised(conn, columns["g"]) == instance_id
        if "j" in columns:
            assert await _normalised(conn, columns["j"]) == job_id


def test_the_builder_makes_rows_of_exactly_the_declared_columns(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    instance = make_instance()
    execution = make_execution(instance)
    commands: list[Command] = [
        InsertInstance(instance=instance),
        InsertExecution(execution=execution, input_snapshot={}),
        InsertJob(job=make_job(execution)),
    ]
    document, _ = apply.command_document([commands], audit=True)
    assert document is not None
    for kind, rows in document.items():
        assert all(row.keys() == apply.COLUMNS[kind].keys() for row in rows), kind

    jobs = apply._KEYS["jobs"]  # COLUMNS["jobs"] as a set, what the builder checks against
    assert jobs == apply.COLUMNS["jobs"].keys()
    monkeypatch.setitem(apply._KEYS, "jobs", jobs | {"priority"})
    with pytest.raises(ValueError, match=r"'jobs' row .* missing \['priority'\], unknown \[\]"):
        apply.command_document([commands], audit=True)
    monkeypatch.setitem(apply._KEYS, "jobs", jobs - {"payload"})
    with pytest.raises(ValueError, match=r"'jobs' row .* missing \[\], unknown \['payload'\]"):
        apply.command_document([commands], audit=True)
