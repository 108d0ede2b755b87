"""The browser UI's files are served at /ui/ from the installed package."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from rest_fakes import Client, FakeService

from rochallor_server import auth
from rochallor_server.api.rest import app as rest_app
from rochallor_server.metrics import Metrics
from rochallor_server.ui import add_ui_routes, static_dir


@pytest.fixture
async def client() -> AsyncIterator[TestClient[Any, Any]]:
    """The REST application with the UI beside it, as the engine process composes them."""
    app = rest_app.make_app(Metrics(), FakeService())
    add_ui_routes(app)
    ui_client: TestClient[Any, Any] = TestClient(TestServer(app))
    await ui_client.start_server()
    yield ui_client
    await ui_client.close()


def test_the_built_ui_is_part_of_the_package() -> None:
    assert (static_dir() / "index.html").is_file()
    assert (static_dir() / "assets" / "index.js").is_file()


async def test_ui_redirects_to_the_trailing_slash(client: Client) -> None:
    response = await client.get("/ui", allow_redirects=False)

    assert response.status == 302
    assert response.headers["Location"] == "/ui/"


async def test_ui_root_is_the_page_and_assets_are_served(client: Client) -> None:
    page = await client.get("/ui/")
    script = await client.get("/ui/assets/index.js")

    assert page.status == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert page.headers["Cache-Control"] == "no-cache"
    assert '<div id="root">' in await page.text()
    assert script.status == 200
    assert "javascript" in script.headers["Content-Type"]


async def test_unknown_files_and_escapes_are_404(client: Client) -> None:
    assert (await client.get("/ui/assets/nope.js")).status == 404
    assert (await client.get("/ui/../../api/rest/openapi.json")).status == 404
    assert (await client.get("/ui/%2e%2e/__init__.py")).status == 404


async def test_with_access_control_the_page_is_open_and_validation_needs_read() -> None:
    access = auth.AccessControl(auth.MemoryKeyStore(), enforce=True)
    _key, token = await access.create_key(name="modeller", role="viewer")
    app = rest_app.make_app(Metrics(), FakeService(), access=access)
    add_ui_routes(app)
    guarded: TestClient[Any, Any] = TestClient(TestServer(app))
    await guarded.start_server()
    try:
        page = await guarded.get("/ui/")
        anonymous = await guarded.post(
            "/v1/definitions/validate", data=b"{}", headers={"Content-Type": "application/json"}
        )
        viewer = await guarded.post(
            "/v1/definitions/validate",
            data=b"{}",
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        )

        assert page.status == 200
        assert anonymous.status == 401
        assert viewer.status == 200
        assert (await viewer.json())["accepted"] is False
    finally:
        await guarded.close()
