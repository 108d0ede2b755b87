"""Process logging setup."""

from __future__ import annotations

import logging
import sys


def configure(level: str) -> None:
    numeric = logging.WARNING if level == "WARN" else getattr(logging, level, logging.INFO)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
