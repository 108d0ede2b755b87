"""``rochallor-modeller``: the browser modeller without an engine.

Serves the UI at ``/ui/`` and the validation endpoint ``POST /v1/definitions/validate`` only:
no PostgreSQL, no definition store. Definitions are imported and exported as files; the UI
notices that no engine answers and hides publishing and the engine browser.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from aiohttp import web

from rochallor_server import __version__
from rochallor_server.api.rest.validation import VALIDATE_PATH, validate_definition
from rochallor_server.ui import UI_PREFIX, add_ui_routes

DEFAULT_PORT = 8088


def make_offline_app() -> web.Application:
    app = web.Application(client_max_size=8 * 1024 * 1024)

    async def root(_request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(f"{UI_PREFIX}/")

    async def healthz(_request: web.Request) -> web.Response:
        return web.Response(status=200)

    app.router.add_get("/", root)
    app.router.add_get("/healthz", healthz)
    app.router.add_post(VALIDATE_PATH, validate_definition)
    add_ui_routes(app)
    return app


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="rochallor-modeller",
        description="Serve the workflow modeller with the validator only (no engine needed).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface (127.0.0.1)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port ({DEFAULT_PORT})")
    parser.add_argument("--version", action="version", version=__version__)
    args = parser.parse_args(argv)
    sys.stdout.write(f"rochallor-modeller: http://{args.host}:{args.port}{UI_PREFIX}/\n")
    sys.stdout.flush()
    web.run_app(make_offline_app(), host=args.host, port=args.port, print=None)
