"""The store's SQL, parsed once at import from the package's ``.sql`` files.

Each block of a ``.sql`` file reads::

    -- name --
    -- One-line description.
    -- $1 first_param type, $2 second_param type     (or: -- (no parameters))
    SQL …

Parsing checks that names are unique (across all the files loaded together) and that every
block documents exactly the ``$n`` parameters its SQL uses, so a file cannot drift from its
comments. ``queries.sql`` holds every statement of the store but the event write, whose
fragments are in ``apply.sql`` (see :mod:`.apply`); ``api_keys.sql`` is loaded by
:mod:`.api_keys`.
"""

from __future__ import annotations

import re
from importlib import resources
from typing import LiteralString

_HEADER = re.compile(r"^-- ([a-z_][a-z0-9_]*) --$", re.MULTILINE)
_PARAM = re.compile(r"\$(\d+)")
_NO_PARAMETERS = "-- (no parameters)"


class StatementFileError(ValueError):
    """A ``.sql`` file of the store is malformed."""


def parse(text: str) -> dict[str, LiteralString]:
    """``{name: sql}`` for every block of a statements file; the comment lines are dropped."""
    statements: dict[str, LiteralString] = {}
    headers = list(_HEADER.finditer(text))
    for index, header in enumerate(headers):
        name = header.group(1)
        end = headers[index + 1].start() if index + 1 < len(headers) else len(text)
        lines = text[header.end() : end].strip().splitlines()
        if len(lines) < 3 or not lines[0].startswith("-- ") or not lines[1].startswith("-- "):
            raise StatementFileError(f"{name}: expected a description line and a parameter line")
        documented = _documented_params(name, lines[1])
        sql = "\n".join(lines[2:]).strip()
        used = {int(n) for n in _PARAM.findall(sql)}
        if used != set(range(1, documented + 1)):
            raise StatementFileError(
                f"{name}: documents {documented} parameter(s) but uses {sorted(used)}"
            )
        if name in statements:
            raise StatementFileError(f"{name}: defined twice")
        # The text comes from a file shipped with the package, never from input. (mypy treats
        # LiteralString as str, so no cast is needed for it; other checkers may want one.)
        statements[name] = sql
    return statements


def _documented_params(name: str, line: str) -> int:
    if line.strip() == _NO_PARAMETERS:
        return 0
    numbers = [int(n) for n in _PARAM.findall(line)]
    if not numbers or numbers != list(range(1, len(numbers) + 1)):
        raise StatementFileError(f"{name}: parameter line must list $1, $2, … in order: {line!r}")
    return len(numbers)


def load(*files: str) -> dict[str, LiteralString]:
    """The blocks of some ``.sql`` files of this package, by name; a name in two files fails."""
    loaded: dict[str, LiteralString] = {}
    for file in files:
        text = resources.files(__package__).joinpath(file).read_text(encoding="utf-8")
        for name, sql in parse(text).items():
            if name in loaded:
                raise StatementFileError(f"{name}: defined twice ({file} and an earlier file)")
            loaded[name] = sql
    return loaded


STATEMENTS: dict[str, LiteralString] = load("queries.sql", "apply.sql")
"""Statement text by block name; a missing name is a ``KeyError``."""
