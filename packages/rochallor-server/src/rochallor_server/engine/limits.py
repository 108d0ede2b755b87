"""Every limit on what the engine accepts, and the checks that apply them (``docs/limits.md``).

One module for both transports: the REST routes and the gRPC service pass what they decoded
to the service layer, which checks it here before anything is stored, so an input is either
refused with a :class:`~rochallor_server.errors.BadRequest` naming the field, or it can always
be stored, read back, encoded on either wire and advanced. The rules:

- **Numbers** are 64-bit integers or finite IEEE-754 doubles, what every Rochallor SDK reads
  (Go and Java ``float64``/``long``, JavaScript ``number``, protobuf ``Value``). An integer
  beyond the signed 64-bit range is refused rather than rounded: the value would change on the
  way. PostgreSQL's ``jsonb`` keeps numbers as exact decimals and prints ``1e300`` as a
  301-digit integer, so the store reads integers beyond 64 bits back as the doubles they were
  written as (:func:`number_from_text`).
- **Text** never holds NUL (PostgreSQL refuses it in ``text`` and ``jsonb``) nor lone
  surrogates (not UTF-8).
- **Identifiers** (worker ids, job types, business keys, filters, path ids) are at most
  :data:`MAX_IDENTIFIER_LENGTH` characters: they are indexed, and a B-tree entry has a size
  limit.
- **Free text** (a failure message, a cancel reason) longer than :data:`MAX_MESSAGE_LENGTH` is
  cut to that length: a worker reporting a long stack trace must not have its failure refused.
- **Documents** (variables, definitions, request bodies) nest at most :data:`MAX_JSON_DEPTH`
  levels and a request is at most :data:`MAX_REQUEST_BYTES` bytes on either transport.

The module is pure: no I/O, no asyncio.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import rochallor_validator as rv
from rochallor_server.engine.model import JsonObject
from rochallor_server.errors import BadRequest

MAX_REQUEST_BYTES: Final = 8 * 1024 * 1024
"""A REST body or a gRPC request message (413 / ``RESOURCE_EXHAUSTED`` past it)."""
MAX_REQUEST_LINE_BYTES: Final = 64 * 1024
"""A REST request line (method, path and query); past it aiohttp answers a plain-text 400."""
# The limits shared with definitions are the validator's: one number for both.
MAX_JSON_DEPTH: Final = rv.MAX_DOCUMENT_DEPTH
"""Nesting of objects and arrays in variables and other JSON documents."""
MAX_IDENTIFIER_LENGTH: Final = rv.MAX_IDENTIFIER_LENGTH
MAX_MESSAGE_LENGTH: Final = 8192
INT_MIN: Final = rv.MIN_INT
INT_MAX: Final = rv.MAX_INT

MAX_JOBS_PER_POLL: Final = 100
MAX_BATCH_COMPLETIONS: Final = 100
MAX_BATCH_STARTS: Final = 100
MAX_PAGE_SIZE: Final = 200
DEFAULT_PAGE_SIZE: Final = 20
MAX_PAGE: Final = 2**31 - 1
MAX_VERSION: Final = rv.MAX_VERSION
"""Definition versions are PostgreSQL ``integer`` columns."""

_TRUNCATED: Final = "…"


def _text_problem(text: str) -> str | None:
    if "\x00" in text:
        return "must not contain NUL characters (\\u0000)"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "must be valid Unicode (a lone surrogate was found)"
    return None


def text(field: str, value: str) -> str:
    """``value`` if it can be stored as PostgreSQL text, else ``BadRequest`` naming ``field``."""
    problem = _text_problem(value)
    if problem is not None:
        raise BadRequest(f"{field} {problem}")
    return value


def identifier(field: str, value: str | None) -> str | None:
    """An id, a key or a filter: storable text of at most :data:`MAX_IDENTIFIER_LENGTH`."""
    if value is None:
        return None
    if len(value) > MAX_IDENTIFIER_LENGTH:
        raise BadRequest(f"{field} must be at most {MAX_IDENTIFIER_LENGTH} characters")
    return text(field, value)


def required_identifier(field: str, value: str | None) -> str:
    if not value:
        raise BadRequest(f"{field} is required")
    checked = identifier(field, value)
    assert checked is not None
    return checked


def message(field: str, value: str | None) -> str | None:
    """Free text: checked like :func:`text`, then cut to :data:`MAX_MESSAGE_LENGTH`."""
    if value is None:
        return None
    text(field, value)
    if len(value) > MAX_MESSAGE_LENGTH:
        return value[: MAX_MESSAGE_LENGTH - len(_TRUNCATED)] + _TRUNCATED
    return value


def version(field: str, value: int | None) -> int | None:
    """A definition version: ``None``/``0`` mean the latest; negative or past the column's range
    is refused."""
    if value is None or value == 0:
        return None
    if not 1 <= value <= MAX_VERSION:
        raise BadRequest(f"{field} must be between 1 and {MAX_VERSION}")
    return value


def json_problem(value: Any, path: str, depth: int = 0) -> str | None:
    """The first reason ``value`` cannot be stored and encoded on both wires, or ``None``.

    The message starts with the JSON path of the offending item (``variables.items[2].name``).
    """
    if isinstance(value, str):
        problem = _text_problem(value)
        return None if problem is None else f"{path} {problem}"
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        if INT_MIN <= value <= INT_MAX:
            return None
        return (
            f"{path} is an integer outside the signed 64-bit range; "
            "send it as a string or a floating-point number"
        )
    if isinstance(value, float):
        if value == value and value not in (float("inf"), float("-inf")):
            return None
        return f"{path} must be a finite number"
    if depth >= MAX_JSON_DEPTH:
        return f"{path} nests deeper than {MAX_JSON_DEPTH} levels"
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{path} has a key that is not a string"
            key_problem = _text_problem(key)
            if key_problem is not None:
                return f"{path}: key {key[:40]!r} {key_problem}"
            problem = json_problem(item, f"{path}.{key}", depth + 1)
            if problem is not None:
                return problem
        return None
    if isinstance(value, list | tuple):
        for n, item in enumerate(value):
            problem = json_problem(item, f"{path}[{n}]", depth + 1)
            if problem is not None:
                return problem
        return None
    return f"{path} is not a JSON value ({type(value).__name__})"


def variables(field: str, value: JsonObject | None) -> JsonObject | None:
    """A variables map, refused with the path of the first item that breaks a rule."""
    if value is None:
        return None
    problem = json_problem(value, field)
    if problem is not None:
        raise BadRequest(problem)
    return value


def number_from_text(digits: str) -> int | float:
    """An integer literal read back from storage: exact within 64 bits, else the double it was.

    Only doubles can be stored past the 64-bit range (:func:`json_problem` refuses larger
    integers), and ``jsonb`` prints them without an exponent.
    """
    if len(digits) <= 20:  # 64-bit integers have at most 19 digits and a sign
        number = int(digits)
        if INT_MIN <= number <= INT_MAX:
            return number
    return float(digits)
