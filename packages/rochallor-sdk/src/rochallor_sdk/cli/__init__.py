"""``rochallor``: the command-line client (deploy, start, inspect, act, run workers).

``main`` is the console-script entry point; ``cli`` the Click group, for embedding.
"""

from __future__ import annotations

from rochallor_sdk.cli._app import CliError, ExitCode, cli, main

__all__ = ["CliError", "ExitCode", "cli", "main"]
