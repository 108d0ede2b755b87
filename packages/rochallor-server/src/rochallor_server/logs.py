"""Process logging setup."""

from __future__ import annotations

import logging
import re
import sys

# Control characters (a newline above all) in a logged value, e.g. a request path with %0A,
# could forge log lines; they are written escaped.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _escape(match: re.Match[str]) -> str:
    return repr(match.group())[1:-1]


class SafeFormatter(logging.Formatter):
    """One record, one line: control characters of the message are escaped (``\\n``, ``\\x00``).

    Tracebacks (``exc_info``) are appended after the message as usual, on their own lines.
    """

    def formatMessage(self, record: logging.LogRecord) -> str:
        return _CONTROL.sub(_escape, super().formatMessage(record))


def configure(level: str) -> None:
    numeric = logging.WARNING if level == "WARN" else getattr(logging, level, logging.INFO)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(SafeFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
