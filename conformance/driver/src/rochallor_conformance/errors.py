"""The driver's exceptions: one root, :class:`ConformanceError`."""

from __future__ import annotations


class ConformanceError(Exception):
    """Rochallor conformance driver error."""


class ScenarioFormatError(ConformanceError):
    """A scenario or vector file does not follow the documented format."""


class CheckFailed(ConformanceError):
    """An expectation of a scenario did not hold."""
