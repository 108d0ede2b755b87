"""Limits on what a definition and an expression may contain.

Everything the validator accepts must be something the engine can schedule, store and read
back: each limit below keeps a value inside what the engine's types (Python ``datetime``,
PostgreSQL ``integer``/``timestamptz``/btree index entries, the 64-bit integers of the expression
language) and its call stack can carry. Each is documented in ``docs/validator.md`` ("Limits").
"""

from __future__ import annotations

from typing import Final

#: A boundary timer comes due at most this many days after it is scheduled, counting every 12
#: months as 366 days and each remaining month as 31 days (their longest lengths). 36 600 days
#: is 100 years of 366 days, so ``P100Y`` and ``P1200M`` are accepted, and a timer scheduled at
#: any time before year 9 000 comes due well before Python's ``datetime.max`` (year 9 999).
MAX_DURATION_DAYS: Final = 36_600

#: ``retryCount``: 0 to one million (the engine stores it in a 32-bit column).
MAX_RETRY_COUNT: Final = 1_000_000

#: ``version`` (accepted and ignored on upload) must fit the 32-bit integer of the wire.
MIN_VERSION: Final = -(2**31)
MAX_VERSION: Final = 2**31 - 1

#: Any JSON number in a definition (literal values, decision-table outputs and defaults,
#: metadata, ...): an integer within the signed 64-bit range, or a finite double; the same rule
#: as the server's for variables (an integer past 64 bits would be rounded by every SDK).
MIN_INT: Final = -(2**63)
MAX_INT: Final = 2**63 - 1

#: Nesting of arrays and objects in the whole definition document (the document itself is 1).
MAX_DOCUMENT_DEPTH: Final = 64

#: Characters in a step id, a ``jobType`` and ``nextWorkflowId``: the server's limit on the
#: identifiers a client sends (job types to poll, step ids in paths), which are indexed columns
#: of the store. (The definition ``id`` is 1-256 characters through ``ID_FORMAT``.)
MAX_IDENTIFIER_LENGTH: Final = 256

#: Characters in one expression (conditions, ``${...}`` values, decision-table inputs).
MAX_EXPRESSION_LENGTH: Final = 4_096

#: Nesting levels in one expression: every open bracket, ``${``, function call and unary
#: operator (``!``, ``-``) counts one level.
MAX_EXPRESSION_NESTING: Final = 32

#: Depth of the operator tree of one expression (``a && b && c`` has depth 3: each binary
#: operator adds a level above its operands).
MAX_EXPRESSION_DEPTH: Final = 128

#: Codes of the issues that report a limit of this module (``RETRY_COUNT_RANGE`` also reports a
#: negative ``retryCount``, so it is not listed).
LIMIT_CODES: Final = frozenset(
    {
        "BOUNDARY_DURATION_RANGE",
        "VERSION_RANGE",
        "NUMBER_RANGE",
        "NESTING_DEPTH",
        "NUL_CHARACTER",
        "STRING_LENGTH",
        "EXPR_LIMIT",
    }
)
