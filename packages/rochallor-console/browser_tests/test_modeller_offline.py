"""The modeller served by ``rochallor-modeller`` (validator only, no engine): files, editing."""

from __future__ import annotations

import json
from pathlib import Path

from playwright.sync_api import Page, expect

from browser_tests.browser import OfflineModeller
from browser_tests.modeller_page import ModellerPage

DEFINITIONS = Path(__file__).parents[3] / "conformance" / "definitions" / "valid"
LOAN = DEFINITIONS / "loan-application.json"


def _import(modeller: ModellerPage, path: Path) -> None:
    modeller.page.get_by_test_id("import-file").set_input_files(str(path))
    expect(modeller.page.get_by_test_id("notice")).to_have_text(f"Imported {path.name}")


def test_offline_mode_offers_files_but_no_engine(offline: OfflineModeller, page: Page) -> None:
    modeller = ModellerPage(page, offline.url)
    modeller.open()

    expect(page.get_by_test_id("engine-state")).to_have_text("offline (validator only)")
    expect(page.get_by_test_id("offline-note")).to_be_visible()
    expect(page.get_by_test_id("publish")).to_have_count(0)
    expect(page.get_by_test_id("import")).to_be_visible()


def test_import_loan_application_and_export_the_same_content(
    offline: OfflineModeller, page: Page, tmp_path: Path
) -> None:
    modeller = ModellerPage(page, offline.url)
    modeller.open()
    _import(modeller, LOAN)

    original = json.loads(LOAN.read_text())
    expect(modeller.nodes()).to_have_count(len(original["steps"]))
    # nextStep 6, parallel branches 2, conditions 3 + 2 inline, one timer
    expect(modeller.edges()).to_have_count(14)
    expect(page.locator(".edge-timer-non-interrupting")).to_have_count(1)
    expect(page.locator(".edge-parallel")).to_have_count(2)
    modeller.wait_valid()

    with page.expect_download() as download_info:
        page.get_by_test_id("export").click()
    download = download_info.value
    assert download.suggested_filename == "LOS_loan-application.json"
    target = tmp_path / download.suggested_filename
    download.save_as(target)
    exported = json.loads(target.read_text())
    assert exported == original
    # same content in the same order, key by key (conditions are evaluated in written order)
    assert json.dumps(exported) == json.dumps(original)


def test_rename_and_delete_update_references_and_undo_restores(
    offline: OfflineModeller, page: Page
) -> None:
    modeller = ModellerPage(page, offline.url)
    modeller.open()
    _import(modeller, LOAN)

    modeller.select("approve-loan")
    modeller.rename("approve")
    document = modeller.json_document()
    steps = {s["id"]: s for s in document["steps"]}
    assert "approve-loan" not in steps
    assert steps["route"]["conditionalNextSteps"]["#creditScore >= 650"] == "approve"
    assert steps["escalate-review"]["conditionalNextSteps"]["approved == true"] == "approve"
    modeller.wait_valid()

    modeller.select("notify-approval-overdue")
    page.keyboard.press("Delete")
    expect(modeller.node("notify-approval-overdue")).to_have_count(0)
    steps = {s["id"]: s for s in modeller.json_document()["steps"]}
    assert "boundaryEvents" in steps["escalate-review"]
    assert steps["escalate-review"]["boundaryEvents"] == []
    expect(page.locator(".edge-timer-non-interrupting")).to_have_count(0)

    page.get_by_test_id("undo").click()
    expect(modeller.node("notify-approval-overdue")).to_have_count(1)
    expect(page.locator(".edge-timer-non-interrupting")).to_have_count(1)
    page.get_by_test_id("undo").click()
    expect(modeller.node("approve-loan")).to_have_count(1)
    page.get_by_test_id("redo").click()
    expect(modeller.node("approve")).to_have_count(1)
    expect(modeller.node("approve-loan")).to_have_count(0)


def test_conditions_reorder_and_the_json_view_edits_both_ways(
    offline: OfflineModeller, page: Page
) -> None:
    modeller = ModellerPage(page, offline.url)
    modeller.open()
    _import(modeller, LOAN)

    modeller.select("route")
    page.get_by_test_id("condition-down-0").click()
    order = list(modeller.json_document()["steps"][6]["conditionalNextSteps"])
    assert order == ["#creditScore >= 650", "#highRisk == true", "#creditScore < 650"]
    expect(
        page.locator(".react-flow__edge-text").filter(has_text="1. #creditScore >= 650")
    ).to_have_count(1)

    # JSON -> canvas: a new END step typed into the text appears as a node
    page.get_by_test_id("tab-json").click()
    document = json.loads(page.get_by_test_id("json-text").input_value())
    document["steps"].append({"id": "end-extra", "name": "Extra", "type": "END"})
    typed = json.dumps(document)  # one line: the view keeps what was typed, as typed
    page.get_by_test_id("json-text").fill(typed)
    expect(modeller.node("end-extra")).to_have_count(1)
    expect(page.get_by_test_id("json-text")).to_have_value(typed)
    # the validator sees it: not reachable from the entry step
    expect(modeller.issue("ALL_REACHABLE", "end-extra")).to_have_count(1)
    # a text that is not JSON is not applied, and says where it breaks
    page.get_by_test_id("json-text").fill('{"id": "x", "steps": [')
    expect(page.get_by_test_id("json-error")).to_contain_text("Not applied")
    expect(modeller.node("end-extra")).to_have_count(1)


def test_clicking_a_problem_selects_its_step(offline: OfflineModeller, page: Page) -> None:
    modeller = ModellerPage(page, offline.url)
    modeller.open()
    _import(modeller, LOAN)
    modeller.select("assess")
    page.get_by_test_id("assign-value-0").fill("${#fraudScore >}")

    problem = modeller.issue("TRANSFORMATION_EXPR_SYNTAX", "assess")
    expect(problem).to_have_count(1)
    page.locator(".react-flow__pane").click(position={"x": 5, "y": 5})
    expect(page.get_by_test_id("definition-properties")).to_be_visible()
    problem.click()
    expect(page.get_by_test_id("step-properties")).to_have_attribute("data-step-id", "assess")
    expect(page.get_by_test_id("expression-position")).to_have_text("${#fraudScore >}")
    expect(page.get_by_test_id("expression-position").locator("mark")).to_have_text("}")


def test_timers_are_drawn_by_kind_and_keyboard_undo_reverts(
    offline: OfflineModeller, page: Page
) -> None:
    modeller = ModellerPage(page, offline.url)
    modeller.open()
    _import(modeller, LOAN)
    expect(page.locator(".edge-timer-non-interrupting")).to_have_count(1)
    expect(page.locator(".edge-timer")).to_have_count(0)

    modeller.select("escalate-review")
    page.get_by_test_id("timer-interrupting-0").check()
    expect(page.locator(".edge-timer")).to_have_count(1)
    expect(page.locator(".edge-timer-non-interrupting")).to_have_count(0)
    page.get_by_test_id("add-timer").click()
    page.get_by_test_id("timer-target-1").select_option("end-rejected")
    page.get_by_test_id("timer-duration-1").fill("P1W")
    expect(page.locator(".edge-timer-non-interrupting")).to_have_count(1)
    modeller.wait_valid()

    page.locator(".react-flow__pane").click(position={"x": 5, "y": 5})
    for _ in range(4):  # duration typing, target, new timer, interrupting
        page.keyboard.press("Control+z")
    expect(page.locator(".edge-timer")).to_have_count(0)
    expect(page.locator(".edge-timer-non-interrupting")).to_have_count(1)
    page.keyboard.press("Control+Shift+z")
    expect(page.locator(".edge-timer")).to_have_count(1)


def test_copy_json_puts_the_definition_on_the_clipboard(
    offline: OfflineModeller, page: Page
) -> None:
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    modeller = ModellerPage(page, offline.url)
    modeller.open()
    _import(modeller, LOAN)

    page.get_by_test_id("copy-json").click()
    expect(page.get_by_test_id("notice")).to_have_text("Definition JSON copied to the clipboard")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert json.dumps(json.loads(copied)) == json.dumps(json.loads(LOAN.read_text()))


def test_decision_table_grid_edits_and_validates(offline: OfflineModeller, page: Page) -> None:
    modeller = ModellerPage(page, offline.url)
    modeller.open()
    _import(modeller, DEFINITIONS / "decision-tables.json")
    modeller.select("classify-risk")
    expect(page.get_by_test_id("decision-table").locator("tbody tr")).to_have_count(4)

    page.get_by_test_id("dt-cell-2-in-0").fill("[500..")
    problem = page.locator('[data-testid="issue"][data-step-id="classify-risk"]')
    expect(problem).to_have_count(1)
    expect(problem).to_contain_text("DECISION_TABLE")
    page.get_by_test_id("dt-cell-2-in-0").fill("[500..700)")
    expect(problem).to_have_count(0)

    page.get_by_test_id("dt-add-rule").click()
    page.get_by_test_id("dt-cell-4-out-0").fill("NONE")
    page.get_by_test_id("dt-cell-4-out-1").fill("0")
    page.get_by_test_id("prop-hitPolicy").select_option("F")
    table = modeller.json_document()["steps"][0]
    assert table["hitPolicy"] == "F"
    assert table["rules"][2]["inputEntries"] == ["[500..700)", "<= 0.8"]
    assert table["rules"][4] == {"inputEntries": ["-", "-"], "outputEntries": ["NONE", 0]}
    modeller.wait_valid()


def test_importing_a_file_that_is_not_a_definition_says_why(
    offline: OfflineModeller, page: Page, tmp_path: Path
) -> None:
    modeller = ModellerPage(page, offline.url)
    modeller.open()
    _import(modeller, LOAN)
    broken = tmp_path / "broken.json"
    broken.write_text('{"id": "x", "steps": ')

    page.get_by_test_id("import-file").set_input_files(str(broken))

    expect(page.get_by_test_id("notice")).to_contain_text("broken.json: ")
    expect(modeller.nodes()).to_have_count(12)  # the open document is kept


def test_dragging_an_edge_end_to_another_step_retargets_it(
    offline: OfflineModeller, page: Page
) -> None:
    modeller = ModellerPage(page, offline.url)
    modeller.open()
    _import(modeller, DEFINITIONS / "order-fulfilment.json")

    updater = page.locator(
        '.react-flow__edge[data-id="dispatch-order:next"] .react-flow__edgeupdater-target'
    )
    start = updater.bounding_box()
    end = modeller.node("end-payment-failed").locator(".react-flow__handle.target").bounding_box()
    assert start is not None and end is not None
    page.mouse.move(start["x"] + start["width"] / 2, start["y"] + start["height"] / 2)
    page.mouse.down()
    page.mouse.move(end["x"] + end["width"] / 2, end["y"] + end["height"] / 2, steps=12)
    page.mouse.up()

    steps = {s["id"]: s for s in modeller.json_document()["steps"]}
    assert steps["dispatch-order"]["nextStep"] == "end-payment-failed"
    # "end" is now unreachable: the validator says so on that node
    expect(modeller.issue("ALL_REACHABLE", "end")).to_have_count(1)
