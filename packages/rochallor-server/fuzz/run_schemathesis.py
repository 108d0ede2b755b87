"""Schemathesis against the served ``/v1/openapi.json`` of a real engine (``nox -s schemathesis``).

Starts an embedded PostgreSQL and the engine as a subprocess, seeds a definition and a few
instances so that generated ids can meet real resources, then runs schemathesis with every
check that concerns a server without access control: no server error, every answer in the
documented status codes, content types and schemas, schema-valid requests accepted and
schema-violating ones refused. Bounded by ``--max-examples`` per operation (``ST_MAX_EXAMPLES``,
default 40) and a fixed seed (``ST_SEED``), so a run is repeatable; the exit code is
schemathesis's own. The per-operation exceptions live in ``schemathesis.toml`` beside this file,
each with its reason.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

from rochallor_server.store.postgres import migrate
from rochallor_server.testing import EngineProcess, TestCluster

HERE = Path(__file__).resolve().parent
SEED_DEFINITION = {
    "id": "seed",
    "name": "seed",
    "steps": [
        {
            "id": "work",
            "name": "Work",
            "type": "SERVICE_TASK",
            "jobType": "work",
            "nextStep": "done",
        },
        {"id": "done", "name": "Done", "type": "END"},
    ],
}


def _post(base: str, path: str, body: object) -> None:
    request = urllib.request.Request(
        base + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


def main() -> int:
    cluster = TestCluster()
    cluster.start()
    code = 1
    try:
        cluster.prepare_template(migrate.migrate_sync)
        with tempfile.TemporaryDirectory() as tmp:
            # Long polls end within schemathesis's request timeout (10 s).
            engine = EngineProcess(
                cluster.new_database(), Path(tmp) / "engine.log", env={"WE_MAX_POLL_WAIT": "2s"}
            )
            engine.start()
            try:
                _post(engine.rest_url, "/v1/definitions", SEED_DEFINITION)
                for n in range(3):
                    _post(
                        engine.rest_url,
                        "/v1/instances",
                        {"definitionId": "seed", "variables": {"n": n}},
                    )
                command = [
                    sys.executable,
                    "-m",
                    "schemathesis.cli",
                    "--config-file",
                    str(HERE / "schemathesis.toml"),
                    "run",
                    f"{engine.rest_url}/v1/openapi.json",
                    "--phases",
                    "examples,coverage,fuzzing",
                    "--max-examples",
                    os.environ.get("ST_MAX_EXAMPLES", "40"),
                    "--seed",
                    os.environ.get("ST_SEED", "20261204"),
                    "--workers",
                    "2",
                    "--suppress-health-check",
                    "all",
                ]
                # run in the temporary directory: schemathesis keeps a cache in its working one
                code = subprocess.call(command, cwd=tmp)
            finally:
                engine.stop()
                if code != 0:
                    sys.stderr.write(engine.log()[-4000:])
    finally:
        cluster.stop()
    return code


if __name__ == "__main__":
    sys.exit(main())
