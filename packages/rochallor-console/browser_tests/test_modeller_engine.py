"""The modeller against a real engine: draw, validate live, publish, find, start."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from playwright.sync_api import Page, expect

from browser_tests.modeller_page import ModellerPage
from rochallor_server.testing import EngineProcess


def _get(engine: EngineProcess, path: str) -> Any:
    with urllib.request.urlopen(f"{engine.rest_url}{path}") as response:
        return json.loads(response.read())


def _upload(engine: EngineProcess, document: dict[str, Any]) -> Any:
    request = urllib.request.Request(
        f"{engine.rest_url}/v1/definitions",
        data=json.dumps(document).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request) as response:
        return json.loads(response.read())


def test_build_order_fulfilment_from_an_empty_canvas_and_publish_it(
    engine: EngineProcess, page: Page
) -> None:
    modeller = ModellerPage(page, engine.rest_url)
    modeller.open()
    page.get_by_test_id("new").click()
    modeller.fill("def-id", "SHOP::order-fulfilment-drawn")
    modeller.fill("def-name", "Order fulfilment (drawn)")

    # steps, dragged from the palette
    modeller.add_step("SERVICE_TASK", 120, 120)
    modeller.rename("reserve-stock")
    modeller.fill("prop-name", "Reserve stock")
    # a service task without a job type: the validator's error shows on the node and in the list
    expect(modeller.node("reserve-stock").locator(".step-node")).to_have_attribute(
        "data-issue", "error"
    )
    expect(modeller.issue("SERVICE_TASK_JOB_TYPE", "reserve-stock")).to_have_count(1)
    modeller.fill("prop-jobType", "reserve-stock")
    modeller.fill("prop-retryCount", "3")
    expect(modeller.issue("SERVICE_TASK_JOB_TYPE", "reserve-stock")).to_have_count(0)
    expect(modeller.node("reserve-stock").locator(".step-node")).to_have_attribute("data-issue", "")

    modeller.add_step("SERVICE_TASK", 320, 120)
    modeller.rename("charge-payment")
    modeller.fill("prop-name", "Charge payment")
    modeller.fill("prop-jobType", "charge-payment")
    modeller.fill("prop-retryCount", "1")

    modeller.add_step("DECISION", 500, 120)
    modeller.rename("payment-status")
    modeller.fill("prop-name", "Payment status")

    modeller.add_step("SERVICE_TASK", 640, 60)
    modeller.rename("dispatch-order")
    modeller.fill("prop-name", "Dispatch order")
    modeller.fill("prop-jobType", "dispatch-order")

    modeller.add_step("END", 820, 60)
    modeller.rename("end")
    modeller.fill("prop-name", "Order dispatched")

    modeller.add_step("END", 640, 240)
    modeller.rename("end-payment-failed")
    modeller.fill("prop-name", "Payment failed")

    # edges, dragged handle to handle
    modeller.connect("reserve-stock", "charge-payment")
    modeller.connect("charge-payment", "payment-status")
    modeller.connect("payment-status", "dispatch-order")
    modeller.connect("payment-status", "end-payment-failed")
    modeller.connect("dispatch-order", "end")
    expect(modeller.edges()).to_have_count(5)

    # the decision's branches are labelled in order; write their conditions
    modeller.select("payment-status")
    expect(page.get_by_test_id("condition-row")).to_have_count(2)
    expect(page.get_by_test_id("condition-target-0")).to_have_value("dispatch-order")
    expect(page.get_by_test_id("condition-target-1")).to_have_value("end-payment-failed")
    # a half-typed expression: the error appears on the node, pointed at its position
    page.get_by_test_id("condition-expr-0").fill("paymentStatus ==")
    expect(modeller.issue("DECISION_EXPR_SYNTAX", "payment-status")).to_have_count(1)
    expect(modeller.node("payment-status").locator(".step-node")).to_have_attribute(
        "data-issue", "error"
    )
    expect(page.get_by_test_id("expression-position")).to_contain_text("paymentStatus ==")
    page.get_by_test_id("condition-expr-0").fill("paymentStatus == 'CAPTURED'")
    page.get_by_test_id("condition-expr-1").fill("paymentStatus != 'CAPTURED'")
    expect(modeller.issue("DECISION_EXPR_SYNTAX")).to_have_count(0)
    expect(
        page.locator(".react-flow__edge-text").filter(has_text="1. paymentStatus == 'CAPTURED'")
    ).to_have_count(1)
    modeller.wait_valid()

    page.get_by_test_id("publish").click()
    expect(page.get_by_test_id("notice")).to_have_text(
        "Published SHOP::order-fulfilment-drawn version 1"
    )

    listed = _get(engine, "/v1/definitions?keyword=order-fulfilment-drawn")
    assert [(d["id"], d["version"]) for d in listed["items"]] == [
        ("SHOP::order-fulfilment-drawn", 1)
    ]
    stored = _get(engine, "/v1/definitions/SHOP::order-fulfilment-drawn")
    steps = {s["id"]: s for s in stored["steps"]}
    assert stored["steps"][0]["id"] == "reserve-stock"
    assert steps["reserve-stock"] == {
        "id": "reserve-stock", "name": "Reserve stock", "type": "SERVICE_TASK",
        "jobType": "reserve-stock", "retryCount": 3, "nextStep": "charge-payment",
    }  # fmt: skip
    assert steps["charge-payment"]["nextStep"] == "payment-status"
    assert list(steps["payment-status"]["conditionalNextSteps"].items()) == [
        ("paymentStatus == 'CAPTURED'", "dispatch-order"),
        ("paymentStatus != 'CAPTURED'", "end-payment-failed"),
    ]
    assert steps["dispatch-order"]["nextStep"] == "end"
    assert {s["type"] for s in stored["steps"]} == {"SERVICE_TASK", "DECISION", "END"}

    # a test instance of what was published
    page.get_by_test_id("start-instance").click()
    page.get_by_test_id("start-variables").fill('{"orderId": "o-1"}')
    page.get_by_test_id("start-submit").click()
    expect(page.get_by_test_id("instance-status")).to_have_text("ACTIVE")
    instance_id = page.get_by_test_id("instance-id").inner_text()
    instance = _get(engine, f"/v1/instances/{instance_id}")
    assert instance["definitionId"] == "SHOP::order-fulfilment-drawn"
    assert instance["variables"] == {"orderId": "o-1"}
    assert instance["currentStepIds"] == ["reserve-stock"]


def test_browse_versions_on_the_engine_and_open_one(engine: EngineProcess, page: Page) -> None:
    base = {
        "id": "UI::versions",
        "name": "Versions v1",
        "steps": [
            {"id": "w", "name": "Work", "type": "SERVICE_TASK", "jobType": "w", "nextStep": "e"},
            {"id": "e", "name": "End", "type": "END"},
        ],
    }
    _upload(engine, base)
    _upload(engine, {**base, "name": "Versions v2"})
    modeller = ModellerPage(page, engine.rest_url)
    modeller.open()

    page.get_by_test_id("open-engine").click()
    page.get_by_test_id("engine-filter").fill("UI::versions")
    row = page.locator('[data-testid="engine-definition"][data-definition-id="UI::versions"]')
    expect(row).to_contain_text("v2")
    row.get_by_title("Versions").click()
    row.get_by_test_id("open-version-1").click()

    expect(page.get_by_test_id("notice")).to_have_text("Opened UI::versions version 1")
    expect(page.get_by_test_id("def-name")).to_have_value("Versions v1")
    expect(modeller.nodes()).to_have_count(2)


def test_publishing_an_invalid_definition_is_not_offered(engine: EngineProcess, page: Page) -> None:
    modeller = ModellerPage(page, engine.rest_url)
    modeller.open()
    page.get_by_test_id("new").click()
    modeller.add_step("SERVICE_TASK", 200, 150)

    expect(modeller.validation_state()).to_contain_text("error")
    expect(page.get_by_test_id("publish")).to_be_disabled()
