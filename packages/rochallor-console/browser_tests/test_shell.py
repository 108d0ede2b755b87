"""The UI is served by the engine at /ui/ and shows its navigation."""

from __future__ import annotations

import urllib.request

from playwright.sync_api import Page, expect

from rochallor_server.testing import EngineProcess


def test_engine_serves_the_ui_with_the_modeller_section(engine: EngineProcess, page: Page) -> None:
    page.goto(f"{engine.rest_url}/ui/")
    expect(page.get_by_test_id("nav-modeller")).to_have_text("Modeller")
    expect(page.get_by_test_id("engine-state")).to_have_text("engine connected")


def test_ui_path_without_slash_redirects(engine: EngineProcess) -> None:
    with urllib.request.urlopen(f"{engine.rest_url}/ui") as response:
        assert response.geturl().endswith("/ui/")
        assert b'<div id="root">' in response.read()
