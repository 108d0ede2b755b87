"""The .sql files' parsing, its guards, and the JSON codecs of the pool (no database needed)."""

from __future__ import annotations

import json
import re

import pytest

from rochallor_server.store.postgres import (
    apply,
    notifications,
    outbox,
    pool,
    session,
    statements,
    store,
)


def test_every_statement_is_loaded_and_used_by_the_store() -> None:
    bound = {
        value
        for module in (session, store, notifications, outbox)
        for value in vars(module).values()
        if isinstance(value, str)
    }
    bound |= set(apply._FRAGMENT_SQL.values())  # the apply statement's building blocks
    unused = {name for name, sql in statements.STATEMENTS.items() if sql not in bound}
    assert not unused, f"blocks of queries.sql/apply.sql the store never uses: {sorted(unused)}"
    assert "claim_jobs" in statements.STATEMENTS
    assert "apply_saved" in statements.STATEMENTS
    with pytest.raises(KeyError):
        statements.STATEMENTS["no_such_query"]


def test_parse_keeps_the_sql_and_drops_the_comments() -> None:
    text = """-- file comment

-- first --
-- Does one thing.
-- $1 a text, $2 b int
SELECT $1, $2;

-- second --
-- Does another.
-- (no parameters)
SELECT 1;
"""
    assert statements.parse(text) == {"first": "SELECT $1, $2;", "second": "SELECT 1;"}


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("-- q --\n-- Desc.\n-- $1 a\nSELECT $1, $2;\n", "documents 1 parameter"),
        ("-- q --\n-- Desc.\n-- $1 a, $2 b\nSELECT $2;\n", "documents 2 parameter"),
        ("-- q --\n-- Desc.\n-- $2 a\nSELECT $1;\n", "in order"),
        ("-- q --\nSELECT 1;\n", "description line"),
        (
            "-- q --\n-- D.\n-- (no parameters)\nSELECT 1;\n"
            "-- q --\n-- D.\n-- (no parameters)\nSELECT 2;\n",
            "defined twice",
        ),
    ],
)
def test_parse_rejects_drift_between_comments_and_sql(text: str, error: str) -> None:
    with pytest.raises(statements.StatementFileError, match=error):
        statements.parse(text)


def test_the_statements_notify_the_channel_the_listener_listens_on() -> None:
    channels = {
        channel
        for sql in statements.STATEMENTS.values()
        for channel in re.findall(r"pg_notify\('(\w+)'", sql)
    }
    assert channels == {notifications.JOBS_CHANNEL}


def test_a_name_in_two_files_is_refused() -> None:
    assert statements.load("queries.sql").keys().isdisjoint(statements.load("apply.sql"))
    with pytest.raises(statements.StatementFileError, match="lock_definition_id: defined twice"):
        statements.load("queries.sql", "queries.sql")


@pytest.mark.parametrize(
    "value",
    [
        {"a": 1, "b": [1.5, None, True, "x"]},
        {"max": 2**63 - 1, "min": -(2**63), "float": 1e300, "tiny": -2.5e-300},
        {"digits in a string": "12345678901234567890123"},
        {"ünïcode": "☃", "nul": "\u0000"},
        [[[[[[]]]]]],
    ],
)
def test_json_codecs_round_trip_exactly(value: object) -> None:
    text = pool.encode_json(value)
    assert json.loads(text) == value
    decoded = pool.decode_json(text)
    assert decoded == value
    assert type(decoded) is type(value)


def test_integers_past_64_bits_read_back_as_the_doubles_they_were_stored_as() -> None:
    # jsonb prints numbers without an exponent: 1e300 comes back as 301 digits. Only doubles
    # can be stored that large (engine/limits.py refuses such integers at the door).
    assert pool.decode_json("[" + "1" + "0" * 300 + "]") == [1e300]
    assert pool.decode_json('{"n": -10000000000000000000000000}') == {"n": -1e25}
    assert pool.decode_json("[9223372036854775807, -9223372036854775808]") == [2**63 - 1, -(2**63)]
    assert isinstance(pool.decode_json("[9223372036854775807]")[0], int)
