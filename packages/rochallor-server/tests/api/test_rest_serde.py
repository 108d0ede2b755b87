"""Wire encoding details that do not need a server."""

from __future__ import annotations

import datetime as dt

import pytest
from rest_fakes import definition_record

from rochallor_server.api.rest import serde
from rochallor_server.engine.model import DefinitionRecord


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (dt.datetime(2025, 3, 1, 12, 34, 56, 789012, tzinfo=dt.UTC), "2025-03-01T12:34:56.789012Z"),
        (dt.datetime(2025, 3, 1, 12, 34, 56, 789000, tzinfo=dt.UTC), "2025-03-01T12:34:56.789Z"),
        (dt.datetime(2025, 3, 1, 12, 34, 56, 100, tzinfo=dt.UTC), "2025-03-01T12:34:56.0001Z"),
        (dt.datetime(2025, 3, 1, 12, 34, 56, tzinfo=dt.UTC), "2025-03-01T12:34:56Z"),
        (
            dt.datetime(2025, 3, 1, 0, 30, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30))),
            "2025-02-28T19:00:00Z",
        ),
        (
            dt.datetime(2025, 3, 1, 22, 0, 0, 1, tzinfo=dt.timezone(dt.timedelta(hours=-3))),
            "2025-03-02T01:00:00.000001Z",
        ),
    ],
)
def test_timestamp_is_utc_with_z_and_trimmed_fraction(value: dt.datetime, text: str) -> None:
    assert serde.timestamp(value) == text


def test_definition_inserts_version_after_id_and_drops_a_stored_version() -> None:
    record = DefinitionRecord(
        id="d",
        version=4,
        name="D",
        uploaded_at=dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
        document={"name": "D", "version": 1, "id": "d", "steps": []},
    )

    encoded = serde.definition(record)

    assert list(encoded.items()) == [("name", "D"), ("id", "d"), ("version", 4), ("steps", [])]


def test_definition_does_not_mutate_the_record() -> None:
    record = definition_record()

    serde.definition(record)

    assert "version" not in record.document


def test_large_integers_survive_encoding() -> None:
    assert (
        serde.dumps({"n": 2**62, "f": 100, "x": 1.5})
        == b'{"n":4611686018427387904,"f":100,"x":1.5}'
    )


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, (0, 0)),
        ({"page": "+2", "pageSize": "+7"}, (2, 7)),
        ({"page": " 2", "pageSize": "1_0"}, (0, 0)),
        ({"page": "99999999999999999999", "pageSize": "201"}, (99999999999999999999, 201)),
    ],
)
def test_pagination(query: dict[str, str], expected: tuple[int, int]) -> None:
    assert serde.pagination(query) == expected
