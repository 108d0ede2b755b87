"""Fixtures of the browser tests.

- ``engine`` (session): a real engine process on a fresh embedded-PostgreSQL database.
- ``offline`` (session): the offline ``rochallor-modeller`` (validator only, no database).
- ``browser`` (session): Debian's Chromium driven by Playwright.
- ``page`` (function): a fresh browser context and page; any uncaught page error fails the test.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from browser_tests.browser import CHROMIUM, CHROMIUM_ARGS, OfflineModeller
from rochallor_server.testing import EngineProcess, TestCluster


@pytest.fixture(scope="session")
def engine(
    pg_cluster: TestCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EngineProcess]:
    dsn = pg_cluster.new_database()
    process = EngineProcess(dsn, tmp_path_factory.mktemp("engine") / "engine.log")
    process.start()
    try:
        yield process
    finally:
        process.stop()
        pg_cluster.drop_database(dsn)


@pytest.fixture(scope="session")
def offline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OfflineModeller]:
    modeller = OfflineModeller(tmp_path_factory.mktemp("offline") / "modeller.log")
    modeller.start()
    try:
        yield modeller
    finally:
        modeller.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM} (nox -s tests_ui installs Debian's chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    """With ``UI_TEST_SCREENSHOTS=<dir>``, the last state of each test's page is saved there."""
    context = browser.new_context(viewport={"width": 1400, "height": 860}, accept_downloads=True)
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield opened
    finally:
        shots = os.environ.get("UI_TEST_SCREENSHOTS")
        if shots:
            opened.screenshot(path=str(Path(shots) / f"{request.node.name}.png"))
        context.close()
    assert not errors, f"uncaught errors in the page: {errors}"
