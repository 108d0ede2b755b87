"""Rochallor conformance suite driver: run language-neutral scenarios against any engine and any
worker (``python -m rochallor_conformance --help``)."""

from __future__ import annotations

__version__ = "0.1.0"
