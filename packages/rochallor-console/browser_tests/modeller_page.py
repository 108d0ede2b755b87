"""Drives the modeller page the way a user does: palette drags, handle drags, the property panel."""

from __future__ import annotations

import json
from typing import Any

from playwright.sync_api import Locator, Page, expect


class ModellerPage:
    def __init__(self, page: Page, base_url: str) -> None:
        self.page = page
        self.base_url = base_url

    def open(self) -> None:
        self.page.goto(f"{self.base_url}/ui/#/modeller")
        expect(self.page.get_by_test_id("canvas")).to_be_visible()
        expect(self.page.get_by_test_id("engine-state")).not_to_have_text("…")

    def node(self, step_id: str) -> Locator:
        return self.page.locator(f'.react-flow__node[data-id="{step_id}"]')

    def nodes(self) -> Locator:
        return self.page.locator(".react-flow__node")

    def add_step(self, step_type: str, x: float, y: float) -> str:
        """Drag a palette entry onto the canvas at (x, y) of the canvas; the new step's id."""
        before = self.nodes().count()
        self.page.get_by_test_id(f"palette-{step_type}").drag_to(
            self.page.get_by_test_id("canvas"), target_position={"x": x, "y": y}
        )
        expect(self.nodes()).to_have_count(before + 1)
        return self.page.get_by_test_id("prop-id").input_value()

    def select(self, step_id: str) -> None:
        self.node(step_id).click()
        expect(self.page.get_by_test_id("step-properties")).to_have_attribute(
            "data-step-id", step_id
        )

    def rename(self, new_id: str) -> None:
        field = self.page.get_by_test_id("prop-id")
        field.fill(new_id)
        field.press("Enter")
        expect(self.page.get_by_test_id("step-properties")).to_have_attribute(
            "data-step-id", new_id
        )

    def fill(self, test_id: str, value: str) -> None:
        self.page.get_by_test_id(test_id).fill(value)

    def connect(self, source: str, target: str) -> None:
        """Drag from the source step's outgoing handle to the target step's incoming handle."""
        start = self.node(source).locator(".react-flow__handle.source").bounding_box()
        end = self.node(target).locator(".react-flow__handle.target").bounding_box()
        assert start is not None and end is not None
        mouse = self.page.mouse
        mouse.move(start["x"] + start["width"] / 2, start["y"] + start["height"] / 2)
        mouse.down()
        mouse.move(end["x"] + end["width"] / 2, end["y"] + end["height"] / 2, steps=12)
        mouse.up()

    def edges(self) -> Locator:
        return self.page.locator(".react-flow__edge")

    def validation_state(self) -> Locator:
        return self.page.get_by_test_id("validation-state")

    def wait_valid(self) -> None:
        expect(self.validation_state()).to_have_text("valid", timeout=10_000)

    def issue(self, code: str, step_id: str | None = None) -> Locator:
        selector = f'[data-testid="issue"][data-code="{code}"]'
        if step_id is not None:
            selector += f'[data-step-id="{step_id}"]'
        return self.page.locator(selector)

    def json_document(self) -> Any:
        self.page.get_by_test_id("tab-json").click()
        text = self.page.get_by_test_id("json-text").input_value()
        self.page.get_by_test_id("tab-properties").click()
        return json.loads(text)
