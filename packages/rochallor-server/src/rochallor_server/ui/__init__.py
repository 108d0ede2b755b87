"""The browser UI (modeller and console), served as static files at ``/ui/``.

The files under ``static/`` are built from ``packages/rochallor-console`` and committed, so a
plain ``pip install`` brings them (``nox -s ui_build`` rebuilds them, ``nox -s ui_check``
fails when they differ from a fresh build).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from aiohttp import web

UI_PREFIX = "/ui"

_CACHE_HEADERS = {"Cache-Control": "no-cache"}


def static_dir() -> Path:
    """The directory of the built UI inside the installed package."""
    return Path(str(resources.files("rochallor_server.ui").joinpath("static")))


def _resolve(root: Path, tail: str) -> Path | None:
    """The file ``tail`` under ``root``, or None when absent or outside it."""
    candidate = (root / tail).resolve()
    try:
        candidate.relative_to(root.resolve())
    except ValueError:
        return None
    return candidate if candidate.is_file() else None


def add_ui_routes(app: web.Application, root: Path | None = None) -> None:
    """``GET /ui`` redirects to ``/ui/``; ``/ui/`` is the page; ``/ui/<file>`` its assets.

    The UI routes by URL fragment (``/ui/#/modeller``), so every page is ``index.html``.
    """
    base = root or static_dir()

    async def redirect(_request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(f"{UI_PREFIX}/")

    async def serve(request: web.Request) -> web.StreamResponse:
        tail = request.match_info.get("tail", "") or "index.html"
        found = _resolve(base, tail)
        if found is None:
            if not (base / "index.html").is_file():
                raise web.HTTPNotFound(text="the UI is not built into this installation")
            raise web.HTTPNotFound(text=f"no such UI file: {tail}")
        return web.FileResponse(found, headers=_CACHE_HEADERS)

    app.router.add_get(UI_PREFIX, redirect)
    app.router.add_get(UI_PREFIX + "/{tail:.*}", serve)
