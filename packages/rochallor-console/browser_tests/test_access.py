"""Access control in Chromium: the console's sign-in on an engine that requires credentials, and
cross-origin posts from a page on another origin that must not change anything.

Keys are created with the ``rochallor-server keys`` CLI before the engine starts, so the engine
enforces access control (``WE_AUTH_REQUIRED=true`` as well). Clients of the engine are the SDK's
``RestClient``; it runs on its own event loop in another thread, as does the other origin's
aiohttp server (Playwright's sync API owns the test's thread).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import urllib.request
import uuid
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pytest
from aiohttp import web
from playwright.sync_api import Page, Response, expect

from browser_tests.browser import free_port
from rochallor_sdk import RestClient
from rochallor_server.testing import EngineProcess, TestCluster

T = TypeVar("T")
ROLES = ("admin", "operator", "viewer")


def run(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine on a fresh event loop in another thread."""

    async def main() -> T:
        return await make()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, main()).result(timeout=60)


def sdk(engine: EngineProcess, token: str | None, call: Callable[[RestClient], Awaitable[T]]) -> T:
    async def go() -> T:
        async with RestClient(engine.rest_url, token=token) as client:
            return await call(client)

    return run(go)


def create_key(dsn: str, role: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WE_", "ROCHALLOR_"))}
    command = ["keys", "create", "--json", "--name", f"browser {role}", "--role", role]
    created = subprocess.run(
        [sys.executable, "-m", "rochallor_server", *command],
        env={**env, "WE_POSTGRES_DSN": dsn},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert created.returncode == 0, created.stderr
    token: str = json.loads(created.stdout)["token"]
    return token


class Secured:
    def __init__(self, engine: EngineProcess, tokens: dict[str, str]) -> None:
        self.engine = engine
        self.tokens = tokens


@pytest.fixture(scope="module")
def secured(pg_cluster: TestCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    dsn = pg_cluster.new_database()
    tokens = {role: create_key(dsn, role) for role in ROLES}
    process = EngineProcess(
        dsn,
        tmp_path_factory.mktemp("secured") / "engine.log",
        env={"WE_AUTH_REQUIRED": "true"},
    )
    process.start()
    try:
        yield Secured(process, tokens)
    finally:
        process.stop()
        pg_cluster.drop_database(dsn)


def definition(definition_id: str) -> dict[str, Any]:
    return {
        "id": definition_id,
        "name": "Held",
        "steps": [
            {"id": "hold", "name": "Hold", "type": "WAIT", "nextStep": "end"},
            {"id": "end", "name": "End", "type": "END"},
        ],
    }


def storage(page: Page) -> dict[str, Any]:
    found: dict[str, Any] = page.evaluate(
        "() => ({session: {...window.sessionStorage}, local: {...window.localStorage}})"
    )
    return found


# -- the console's sign-in -----------------------------------------------------------------------


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_console_signs_in_lists_instances_and_signs_out(
    secured: Secured, page: Page, role: str
) -> None:
    engine, admin, token = secured.engine, secured.tokens["admin"], secured.tokens[role]
    definition_id = f"ACCESS::{uuid.uuid4().hex[:8]}"
    sdk(engine, admin, lambda c: c.upload_definition(definition(definition_id)))
    started = sdk(engine, admin, lambda c: c.start_instance(definition_id, business_key=role))

    page.goto(f"{engine.rest_url}/ui/#/instances")
    expect(page.get_by_test_id("signin")).to_be_visible()
    expect(page.get_by_test_id("engine-state")).to_have_text("sign-in required")
    expect(page.get_by_test_id("sign-out")).to_have_count(0)

    # A wrong key is refused and not kept.
    page.get_by_test_id("signin-token").fill("rk_000000000000_" + "x" * 43)
    page.get_by_test_id("signin-submit").click()
    expect(page.get_by_test_id("signin-error")).to_have_text("The engine refused this credential.")
    assert storage(page)["session"] == {}

    page.get_by_test_id("signin-token").fill(token)
    page.get_by_test_id("signin-submit").click()
    expect(page.get_by_test_id("engine-state")).to_have_text("engine connected")
    expect(page.get_by_test_id(f"instance-row-{started['id']}")).to_contain_text(role)
    kept = storage(page)
    assert list(kept["session"].values()) == [token]
    assert token not in json.dumps(kept["local"])
    assert token not in page.url

    # The credential lives for the tab: a reload stays signed in.
    page.reload()
    expect(page.get_by_test_id(f"instance-row-{started['id']}")).to_be_visible()

    page.get_by_test_id("sign-out").click()
    expect(page.get_by_test_id("signin")).to_be_visible()
    expect(page.get_by_test_id("sign-out")).to_have_count(0)
    assert token not in json.dumps(storage(page))
    expect(page.get_by_test_id(f"instance-row-{started['id']}")).to_have_count(0)


def test_console_on_an_open_engine_shows_no_sign_in(engine: EngineProcess, page: Page) -> None:
    page.goto(f"{engine.rest_url}/ui/#/instances")
    expect(page.get_by_test_id("engine-state")).to_have_text("engine connected")
    expect(page.get_by_test_id("instances-table")).to_be_visible()
    expect(page.get_by_test_id("signin")).to_have_count(0)
    expect(page.get_by_test_id("sign-out")).to_have_count(0)


# -- cross-origin posts --------------------------------------------------------------------------

OTHER_PAGE = "<!doctype html><title>another site</title><p>another site</p>"

# What a page on another origin can try. The simple requests (text/plain, a form) are sent
# without asking first; the JSON one (with an operator's token, as if the page had stolen
# one) needs a preflight.
ATTEMPTS = """async ([engine, definitionId, token]) => {
  const body = JSON.stringify({definitionId, variables: {}});
  const url = engine + "/v1/instances";
  const outcome = async (init) => {
    try {
      const response = await fetch(url, {method: "POST", ...init});
      return response.type === "opaque" ? "opaque" : "status " + response.status;
    } catch (error) {
      return error.name;
    }
  };
  const form = new URLSearchParams({definitionId});
  return {
    textPlain: await outcome({mode: "no-cors", headers: {"Content-Type": "text/plain"}, body}),
    form: await outcome({mode: "no-cors", body: form}),
    json: await outcome({
      headers: {"Content-Type": "application/json", Authorization: "Bearer " + token},
      body,
    }),
  };
}"""


class OtherOrigin:
    """An aiohttp server on another port of 127.0.0.1 (another origin) serving one page."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    async def _start(self) -> None:
        async def index(_: web.Request) -> web.Response:
            return web.Response(text=OTHER_PAGE, content_type="text/html")

        app = web.Application()
        app.router.add_get("/", index)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


@pytest.fixture(scope="module")
def other_origin() -> Iterator[OtherOrigin]:
    server = OtherOrigin()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.parametrize("access", ["secured", "open"])
def test_posts_from_another_origin_change_nothing_while_the_sdk_works(
    access: str,
    secured: Secured,
    engine: EngineProcess,
    other_origin: OtherOrigin,
    page: Page,
) -> None:
    # Both engines are fixtures here (not looked up by name) so that they start before the
    # page: Playwright's sync API leaves no room for the fixtures' own event loops after it.
    admin: str | None = None
    operator: str | None = None  # access control off: no credential needed
    if access == "secured":
        engine, admin, operator = (
            secured.engine,
            secured.tokens["admin"],
            secured.tokens["operator"],
        )
    definition_id = f"CSRF::{uuid.uuid4().hex[:8]}"
    sdk(engine, admin, lambda c: c.upload_definition(definition(definition_id)))

    def instances() -> int:
        page_of = sdk(engine, admin, lambda c: c.list_instances(definition_id=definition_id))
        total: int = page_of["total"]
        return total

    answered: list[Response] = []
    page.on("response", lambda r: answered.append(r) if "/v1/instances" in r.url else None)
    page.goto(other_origin.url)
    expect(page.get_by_text("another site")).to_be_visible()
    outcomes = page.evaluate(ATTEMPTS, [engine.rest_url, definition_id, operator or "none"])

    # The simple posts were sent (their answers are opaque to the page) and refused by the
    # engine; the JSON post never left the browser (its preflight got no CORS answer).
    assert outcomes == {"textPlain": "opaque", "form": "opaque", "json": "TypeError"}
    posts = [r for r in answered if r.request.method == "POST"]
    assert len(posts) == 2 and all(r.status == 403 for r in posts), [
        (r.request.method, r.status) for r in answered
    ]
    assert instances() == 0

    # The SDK (no Origin, JSON, a token when access control is on) starts one as usual.
    started = sdk(engine, operator, lambda c: c.start_instance(definition_id))
    assert started["status"] in {"WAITING", "RUNNING"}
    assert instances() == 1


def admin_call(secured: Secured, path: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        secured.engine.rest_url + path,
        data=json.dumps(body).encode(),
        method="POST",
        headers={
            "Content-Type": "application/json",
            "Authorization": f"Bearer {secured.tokens['admin']}",
        },
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        answer: dict[str, Any] = json.loads(response.read())
        return answer


def test_a_key_revoked_while_signed_in_brings_the_sign_in_back(
    secured: Secured, page: Page
) -> None:
    created = admin_call(secured, "/v1/admin/keys", {"name": "soon revoked", "role": "viewer"})
    page.goto(f"{secured.engine.rest_url}/ui/#/instances")
    page.get_by_test_id("signin-token").fill(created["token"])
    page.get_by_test_id("signin-submit").click()
    expect(page.get_by_test_id("instances-table")).to_be_visible()

    admin_call(secured, f"/v1/admin/keys/{created['id']}/revoke", {})
    # The list refreshes itself every 2 s; its next call is answered 401.
    expect(page.get_by_test_id("signin")).to_be_visible(timeout=15_000)
    expect(page.get_by_test_id("engine-state")).to_have_text("sign-in required")
