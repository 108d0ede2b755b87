"""Screenshots of the modeller for docs/modeller.md (``nox -s ui_screenshots``).

Starts a real engine on an embedded PostgreSQL, drives the UI with Playwright in Debian's
Chromium and writes PNG files to docs/images/.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from playwright.sync_api import Page, expect, sync_playwright

from browser_tests.browser import CHROMIUM, CHROMIUM_ARGS
from browser_tests.modeller_page import ModellerPage
from rochallor_server.store.postgres import migrate
from rochallor_server.testing import EngineProcess, TestCluster

ROOT = Path(__file__).parents[3]
VALID = ROOT / "conformance" / "definitions" / "valid"
OUT = ROOT / "docs" / "images"


def _import(page: Page, name: str) -> None:
    page.get_by_test_id("import-file").set_input_files(str(VALID / name))
    expect(page.get_by_test_id("notice")).to_have_text(f"Imported {name}")
    expect(page.get_by_test_id("validation-state")).not_to_have_text("validating…")


def shoot(page: Page, base_url: str) -> None:
    modeller = ModellerPage(page, base_url)
    modeller.open()

    _import(page, "loan-application.json")
    page.get_by_test_id("fit").click()
    page.wait_for_timeout(400)
    page.get_by_test_id("canvas").screenshot(path=str(OUT / "modeller-canvas.png"))
    modeller.select("route")
    page.wait_for_timeout(300)
    page.screenshot(path=str(OUT / "modeller-loan-application.png"))

    _import(page, "order-fulfilment.json")
    modeller.select("payment-status")
    page.get_by_test_id("condition-expr-0").fill("paymentStatus == 'CAPTURED' &&")
    modeller.select("charge-payment")
    page.get_by_test_id("prop-jobType").fill("")
    modeller.select("payment-status")
    expect(modeller.issue("DECISION_EXPR_SYNTAX")).to_have_count(1)
    page.wait_for_timeout(300)
    page.screenshot(path=str(OUT / "modeller-validation.png"))

    _import(page, "decision-tables.json")
    modeller.select("classify-risk")
    page.wait_for_timeout(300)
    page.screenshot(path=str(OUT / "modeller-decision-table.png"))

    _import(page, "order-fulfilment.json")
    modeller.wait_valid()
    page.get_by_test_id("publish").click()
    expect(page.get_by_test_id("notice")).to_contain_text("Published")
    page.get_by_test_id("start-instance").click()
    page.get_by_test_id("start-variables").fill('{"orderId": "o-42", "total": 99.5}')
    page.get_by_test_id("start-submit").click()
    expect(page.get_by_test_id("instance-status")).to_be_visible()
    page.screenshot(path=str(OUT / "modeller-publish-and-start.png"))


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    cluster = TestCluster()
    cluster.start()
    try:
        cluster.prepare_template(migrate.migrate_sync)
        dsn = cluster.new_database()
        with tempfile.TemporaryDirectory() as tmp:
            engine = EngineProcess(dsn, Path(tmp) / "engine.log")
            engine.start()
            try:
                with sync_playwright() as playwright:
                    browser = playwright.chromium.launch(
                        executable_path=CHROMIUM, args=CHROMIUM_ARGS
                    )
                    page = browser.new_page(
                        viewport={"width": 1400, "height": 860}, device_scale_factor=1.5
                    )
                    shoot(page, engine.rest_url)
                    browser.close()
            finally:
                engine.stop()
    finally:
        cluster.stop()
    for path in sorted(OUT.glob("modeller-*.png")):
        sys.stdout.write(f"wrote {path.relative_to(ROOT)}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
