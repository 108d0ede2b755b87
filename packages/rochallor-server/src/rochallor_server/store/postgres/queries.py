"""The store's SQL, parsed once at import from ``queries.sql``.

Each block of ``queries.sql`` reads::

    -- name --
    -- One-line description.
    -- $1 first_param type, $2 second_param type     (or: -- (no parameters))
    SQL …

Parsing checks that names are unique and that every block documents exactly the ``$n``
parameters its SQL uses, so the file cannot drift from its comments.
"""

from __future__ import annotations

import re
from importlib import resources
from typing import LiteralString

_HEADER = re.compile(r"^-- ([a-z_][a-z0-9_]*) --$", re.MULTILINE)
_PARAM = re.compile(r"\$(\d+)")
_NO_PARAMETERS = "-- (no parameters)"


class QueryFileError(ValueError):
    """``queries.sql`` is malformed."""


def parse(text: str) -> dict[str, LiteralString]:
    """``{name: sql}`` for every block of a queries file; the comment lines are dropped."""
    queries: dict[str, LiteralString] = {}
    headers = list(_HEADER.finditer(text))
    for index, header in enumerate(headers):
        name = header.group(1)
        end = headers[index + 1].start() if index + 1 < len(headers) else len(text)
        lines = text[header.end() : end].strip().splitlines()
        if len(lines) < 3 or not lines[0].startswith("-- ") or not lines[1].startswith("-- "):
            raise QueryFileError(f"{name}: expected a description line and a parameter line")
        documented = _documented_params(name, lines[1])
        sql = "\n".join(lines[2:]).strip()
        used = {int(n) for n in _PARAM.findall(sql)}
        if used != set(range(1, documented + 1)):
            raise QueryFileError(
                f"{name}: documents {documented} parameter(s) but uses {sorted(used)}"
            )
        if name in queries:
            raise QueryFileError(f"{name}: defined twice")
        # The text comes from a file shipped with the package, never from input. (mypy treats
        # LiteralString as str, so no cast is needed for it; other checkers may want one.)
        queries[name] = sql
    return queries


def _documented_params(name: str, line: str) -> int:
    if line.strip() == _NO_PARAMETERS:
        return 0
    numbers = [int(n) for n in _PARAM.findall(line)]
    if not numbers or numbers != list(range(1, len(numbers) + 1)):
        raise QueryFileError(f"{name}: parameter line must list $1, $2, … in order: {line!r}")
    return len(numbers)


def _load() -> dict[str, LiteralString]:
    return parse(resources.files(__package__).joinpath("queries.sql").read_text(encoding="utf-8"))


QUERIES: dict[str, LiteralString] = _load()
"""Statement text by block name; a missing name is a ``KeyError``."""
