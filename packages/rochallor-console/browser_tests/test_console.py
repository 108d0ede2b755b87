"""The operations console in Chromium against a real engine: the flows of the console.

Workers are played by the test over the engine's REST API (``Rest``); everything an operator
does goes through the page. ``CONSOLE_SCREENSHOTS=<dir>`` saves the screenshots that
``docs/console.md`` shows.
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from rochallor_server.testing import EngineProcess

REPO = Path(__file__).resolve().parents[3]
ORDER = "SHOP::order-fulfilment"
SHOTS = os.environ.get("CONSOLE_SCREENSHOTS")


class Rest:
    """The engine's REST API, for the parts a worker or a client plays."""

    def __init__(self, base: str) -> None:
        self.base = base

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.base + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                raw = response.read()
                return response.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            return exc.code, json.loads(raw) if raw else None

    def ok(self, method: str, path: str, body: Any = None) -> Any:
        status, answer = self.call(method, path, body)
        assert 200 <= status < 300, (method, path, status, answer)
        return answer

    def upload(self, document: dict[str, Any]) -> None:
        self.ok("POST", "/v1/definitions", document)

    def start(self, definition_id: str, variables: dict[str, Any], key: str) -> dict[str, Any]:
        body = {"definitionId": definition_id, "variables": variables, "businessKey": key}
        started: dict[str, Any] = self.ok("POST", "/v1/instances", body)
        return started

    def job_of(self, job_type: str, instance_id: str, worker: str = "worker-1") -> dict[str, Any]:
        """Claim jobs of a type until the one of ``instance_id`` comes (others go back)."""
        for _ in range(50):
            jobs = self.ok(
                "POST",
                "/v1/jobs/poll",
                {"workerId": worker, "jobTypes": [job_type], "maxJobs": 1, "waitMs": 200},
            )["jobs"]
            # Each test drives its own instances; a job of another one stays leased.
            mine = [j for j in jobs if j["instanceId"] == instance_id]
            if mine:
                job: dict[str, Any] = mine[0]
                return job
        raise AssertionError(f"no {job_type} job for {instance_id}")

    def complete(self, job_type: str, instance_id: str, variables: dict[str, Any]) -> None:
        job = self.job_of(job_type, instance_id)
        self.ok(
            "POST",
            f"/v1/jobs/{job['id']}/complete",
            {"workerId": "worker-1", "variables": variables},
        )

    def fail(self, job_type: str, instance_id: str, message: str) -> None:
        job = self.job_of(job_type, instance_id, worker="worker-pay")
        body = {"workerId": "worker-pay", "errorMessage": message, "retryable": True}
        self.ok("POST", f"/v1/jobs/{job['id']}/fail", body)


@pytest.fixture(scope="module")
def rest(engine: EngineProcess) -> Rest:
    client = Rest(engine.rest_url)
    order = json.loads((REPO / "conformance/definitions/valid/order-fulfilment.json").read_text())
    client.upload(order)
    return client


def key() -> str:
    return f"bk-{uuid.uuid4().hex[:10]}"


def shot(page: Page, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True)


def open_instance(page: Page, engine: EngineProcess, instance_id: str) -> None:
    page.goto(f"{engine.rest_url}/ui/#/instances/{instance_id}")
    expect(page.get_by_test_id("instance-detail")).to_be_visible()


def confirm(page: Page) -> None:
    dialog = page.get_by_test_id("confirm-dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_test_id("confirm-ok").click()


def test_an_instance_moves_to_completed_in_the_list_without_reloading(
    engine: EngineProcess, rest: Rest, page: Page
) -> None:
    business_key = key()
    page.goto(f"{engine.rest_url}/ui/#/instances?definitionId={ORDER}")
    expect(page.get_by_test_id("instances-page")).to_be_visible()
    page.evaluate("window.__sameDocument = true")

    # started from the Definitions page, as an operator would
    page.get_by_test_id("nav-definitions").click()
    page.get_by_test_id(f"definition-{ORDER}").click()
    page.get_by_test_id("start-1").click()
    page.get_by_test_id("start-variables").fill('{"orderId": "o-42"}')
    page.get_by_test_id("start-business-key").fill(business_key)
    confirm(page)
    expect(page.get_by_test_id("started-notice")).to_contain_text("Started")
    instance_id = page.get_by_test_id("started-notice").get_by_role("link").inner_text()

    page.get_by_test_id("nav-instances").click()
    row = page.get_by_test_id(f"instance-row-{instance_id}")
    expect(row.get_by_test_id("row-status")).to_have_text("ACTIVE")
    expect(page.get_by_test_id("count-ACTIVE")).not_to_contain_text("…")
    shot(page, "instances-list")

    rest.complete("reserve-stock", instance_id, {"reserved": True})
    rest.complete("charge-payment", instance_id, {"paymentStatus": "CAPTURED"})
    rest.complete("dispatch-order", instance_id, {"trackingId": "T-42"})

    expect(row.get_by_test_id("row-status")).to_have_text("COMPLETED", timeout=10_000)
    assert page.evaluate("window.__sameDocument") is True  # refreshed in place, not reloaded

    # the filters narrow the list and the counts
    page.get_by_test_id("filter-business-key").fill(business_key)
    page.get_by_test_id("filter-apply").click()
    expect(page.get_by_test_id("pager")).to_contain_text("1 instances")
    expect(page.get_by_test_id("count-COMPLETED")).to_have_text("COMPLETED 1")
    expect(page.get_by_test_id("count-ACTIVE")).to_have_text("ACTIVE 0")

    open_instance(page, engine, instance_id)
    expect(page.get_by_test_id("instance-status")).to_have_text("COMPLETED")
    expect(page.locator('[data-step-id="end"] .step-status')).to_have_text("COMPLETED")
    expect(page.locator('[data-step-id="end-payment-failed"] .step-status')).to_have_count(0)
    page.get_by_test_id("tab-variables").click()
    expect(page.get_by_test_id("variables-tree")).to_contain_text('"T-42"')


def test_a_failed_instance_is_retried_from_its_failed_step_and_completes(
    engine: EngineProcess, rest: Rest, page: Page
) -> None:
    instance = rest.start(ORDER, {"orderId": "o-7"}, key())
    rest.complete("reserve-stock", instance["id"], {"reserved": True})
    for _ in range(2):  # retryCount 1: two attempts, then FAILED
        rest.fail("charge-payment", instance["id"], "card declined")

    open_instance(page, engine, instance["id"])
    expect(page.get_by_test_id("instance-status")).to_have_text("FAILED")
    expect(page.get_by_test_id("failure-reason")).to_contain_text("card declined")
    expect(page.locator('[data-step-id="charge-payment"] .step-status')).to_have_text("FAILED")
    timeline = page.get_by_test_id("timeline")
    expect(timeline).to_contain_text("retried, 0 retries left")
    expect(timeline).to_contain_text("worker-pay")
    shot(page, "instance-failed")

    page.get_by_test_id("action-retry").click()
    page.get_by_test_id("retry-variables").fill('{"card": "backup-card"}')
    shot(page, "retry-dialog")
    confirm(page)
    expect(page.get_by_test_id("instance-status")).to_have_text("ACTIVE")
    expect(page.locator('[data-step-id="charge-payment"] .step-status')).to_have_text(
        re.compile("RUNNING")
    )

    job = rest.job_of("charge-payment", instance["id"])
    assert job["retriesRemaining"] == 1 and job["variables"]["card"] == "backup-card"
    complete = {"workerId": "worker-1", "variables": {"paymentStatus": "CAPTURED"}}
    rest.ok("POST", f"/v1/jobs/{job['id']}/complete", complete)
    rest.complete("dispatch-order", instance["id"], {"trackingId": "T-7"})
    expect(page.get_by_test_id("instance-status")).to_have_text("COMPLETED", timeout=10_000)
    expect(page.get_by_test_id("exec-charge-payment-2")).to_contain_text("COMPLETED")
    expect(page.get_by_test_id("exec-charge-payment-1")).to_contain_text("card declined")
    page.get_by_test_id("tab-audit").click()
    expect(page.get_by_test_id("audit-table")).to_contain_text("instance-retried")
    shot(page, "instance-retried")


def test_a_refused_action_shows_the_server_reason(
    engine: EngineProcess, rest: Rest, page: Page
) -> None:
    instance = rest.start(ORDER, {}, key())
    rest.complete("reserve-stock", instance["id"], {})
    for _ in range(2):
        rest.fail("charge-payment", instance["id"], "gateway down")
    open_instance(page, engine, instance["id"])
    page.get_by_test_id("detail-live").uncheck()  # the page goes stale on purpose
    expect(page.get_by_test_id("action-retry")).to_be_visible()
    rest.ok("POST", f"/v1/instances/{instance['id']}/retry")  # another operator was faster

    page.get_by_test_id("action-retry").click()
    confirm(page)

    expect(page.get_by_test_id("action-error")).to_have_text(
        "Refused: 409: instance is ACTIVE: only a FAILED instance can be retried"
    )
    page.get_by_test_id("confirm-cancel").click()
    rest.ok("POST", f"/v1/instances/{instance['id']}/cancel", {"reason": "cleanup"})


def test_jobs_view_shows_queues_and_exhausted_jobs(
    engine: EngineProcess, rest: Rest, page: Page
) -> None:
    rest.upload(
        {
            "id": "CONSOLE::queue",
            "name": "Queue",
            "steps": [
                {"id": "work", "name": "Work", "type": "SERVICE_TASK", "jobType": "console-queue",
                 "nextStep": "end"},
                {"id": "end", "name": "End", "type": "END"},
            ],
        }
    )  # fmt: skip
    first = rest.start("CONSOLE::queue", {}, key())
    rest.start("CONSOLE::queue", {}, key())
    claimed = rest.job_of("console-queue", first["id"], worker="worker-q")
    fail = {"workerId": "worker-q", "errorMessage": "bad input", "retryable": False}
    rest.ok("POST", f"/v1/jobs/{claimed['id']}/fail", fail)
    rest.ok("POST", "/v1/jobs/poll", {"workerId": "worker-idle", "jobTypes": ["console-idle"]})

    page.goto(f"{engine.rest_url}/ui/#/jobs")
    queue = page.get_by_test_id("queue-console-queue")
    expect(queue.get_by_test_id("queue-unlocked")).to_have_text("1")
    expect(queue.get_by_test_id("queue-locked")).to_have_text("0")
    expect(queue.get_by_test_id("queue-exhausted")).to_have_text("1")
    expect(queue.get_by_test_id("queue-workers")).to_contain_text("worker-q")
    expect(page.get_by_test_id("queue-console-idle").get_by_test_id("queue-workers")).to_have_text(
        "worker-idle"
    )
    incident = page.get_by_test_id(f"exhausted-{first['id']}")
    expect(incident).to_contain_text("bad input")
    shot(page, "jobs")

    incident.get_by_role("button", name="Retry").click()
    confirm(page)
    expect(queue.get_by_test_id("queue-unlocked")).to_have_text("2")
    expect(queue.get_by_test_id("queue-exhausted")).to_have_text("0")
    expect(page.get_by_test_id(f"exhausted-{first['id']}")).to_have_count(0)


def _approval(definition_id: str) -> dict[str, Any]:
    return {
        "id": definition_id,
        "name": "Approval",
        "metadata": {"forms": {"approve": {"approved": False, "comment": "", "limit": 100}}},
        "steps": [
            {"id": "approve", "name": "Approve", "type": "USER_TASK", "nextStep": "route"},
            {"id": "route", "name": "Approved?", "type": "DECISION",
             "conditionalNextSteps": {"approved == true": "ship", "approved == false": "rejected"}},
            {"id": "ship", "name": "Wait for pickup", "type": "WAIT", "nextStep": "end"},
            {"id": "end", "name": "End", "type": "END"},
            {"id": "rejected", "name": "Rejected", "type": "END"},
        ],
    }  # fmt: skip


def test_complete_a_user_task_from_its_form_then_signal_the_wait(
    engine: EngineProcess, rest: Rest, page: Page
) -> None:
    rest.upload(_approval("CONSOLE::approval"))
    instance = rest.start("CONSOLE::approval", {"orderId": "o-9"}, key())
    assert instance["status"] == "WAITING"
    open_instance(page, engine, instance["id"])

    task = page.get_by_test_id("user-task-approve")
    task.get_by_test_id("field-approved").check()
    task.get_by_test_id("field-comment").fill("looks fine")
    task.get_by_test_id("field-limit").fill("250")
    task.get_by_test_id("form-approve-new-key").fill("reviewer")
    task.get_by_test_id("form-approve-add-string").click()
    task.get_by_test_id("field-reviewer").fill("alice")
    shot(page, "user-task-form")
    task.get_by_test_id("complete-approve").click()
    expect(page.get_by_test_id("confirm-dialog")).to_contain_text('"limit": 250')
    confirm(page)

    wait = page.get_by_test_id("wait-ship")
    expect(wait).to_be_visible()
    variables = rest.ok("GET", f"/v1/instances/{instance['id']}")["variables"]
    assert variables == {
        "orderId": "o-9",
        "approved": True,
        "comment": "looks fine",
        "limit": 250,
        "reviewer": "alice",
    }
    wait.get_by_test_id("signal-body-ship").fill("[1]")
    expect(wait).to_contain_text("must be a JSON object")
    expect(wait.get_by_test_id("signal-ship")).to_be_disabled()
    wait.get_by_test_id("signal-body-ship").fill('{"pickedUpBy": "carrier-1"}')
    wait.get_by_test_id("signal-ship").click()
    confirm(page)

    expect(page.get_by_test_id("instance-status")).to_have_text("COMPLETED")
    page.get_by_test_id("tab-variables").click()
    expect(page.get_by_test_id("variables-tree")).to_contain_text('"carrier-1"')
    assert rest.ok("GET", f"/v1/instances/{instance['id']}")["variables"]["pickedUpBy"] == (
        "carrier-1"
    )


def test_cancel_with_a_reason(engine: EngineProcess, rest: Rest, page: Page) -> None:
    rest.upload(_approval("CONSOLE::cancel"))
    instance = rest.start("CONSOLE::cancel", {}, key())
    open_instance(page, engine, instance["id"])

    page.get_by_test_id("action-cancel").click()
    expect(page.get_by_test_id("confirm-ok")).to_be_disabled()  # a reason is required
    page.get_by_test_id("cancel-reason").fill("customer withdrew")
    shot(page, "cancel-dialog")
    confirm(page)

    expect(page.get_by_test_id("instance-status")).to_have_text("CANCELLED")
    expect(page.get_by_test_id("failure-reason")).to_have_text("Cancel reason: customer withdrew")
    expect(page.get_by_test_id("action-cancel")).to_have_count(0)
    answer = rest.ok("GET", f"/v1/instances/{instance['id']}")
    assert (answer["status"], answer["failureReason"]) == ("CANCELLED", "customer withdrew")


def test_definitions_versions_diff_and_modeller_link(
    engine: EngineProcess, rest: Rest, page: Page
) -> None:
    first = _approval("CONSOLE::versions")
    second = json.loads(json.dumps(first))
    second["steps"][0]["name"] = "Manager approval"
    rest.upload(first)
    rest.start("CONSOLE::versions", {}, key())
    rest.upload(second)
    for _ in range(2):
        rest.start("CONSOLE::versions", {}, key())

    page.goto(f"{engine.rest_url}/ui/#/definitions/CONSOLE::versions")
    expect(page.get_by_test_id("version-1-WAITING")).to_have_text("1")
    expect(page.get_by_test_id("version-2-WAITING")).to_have_text("2")
    expect(page.get_by_test_id("diff-summary")).to_have_text("2 changed lines")  # name, version
    changed = page.locator("table.diff tr.diff-changed")
    expect(changed.filter(has_text="Manager approval").locator("td.left")).to_have_text(
        '"name": "Approve",'
    )
    expect(changed.filter(has_text='"version"').locator("td.right")).to_contain_text('"version": 2')
    expect(page.get_by_test_id("open-modeller-2")).to_have_attribute(
        "href", "#/modeller/CONSOLE%3A%3Aversions/2"
    )
    shot(page, "definitions")

    page.get_by_test_id("version-2-WAITING").click()
    expect(page.get_by_test_id("pager")).to_contain_text("2 instances")
    expect(page.get_by_test_id("filter-version")).to_have_value("2")


def test_chained_instances_link_to_each_other(
    engine: EngineProcess, rest: Rest, page: Page
) -> None:
    rest.upload(
        {
            "id": "CONSOLE::second",
            "name": "Second",
            "steps": [{"id": "hold", "name": "Hold", "type": "WAIT", "nextStep": "end"},
                      {"id": "end", "name": "End", "type": "END"}],
        }
    )  # fmt: skip
    rest.upload(
        {
            "id": "CONSOLE::first",
            "name": "First",
            "autoStartNextWorkflow": True,
            "nextWorkflowId": "CONSOLE::second",
            "steps": [{"id": "end", "name": "End", "type": "END"}],
        }
    )
    parent = rest.start("CONSOLE::first", {}, key())
    open_instance(page, engine, parent["id"])
    child_link = page.get_by_test_id("child-links").get_by_role("link")
    expect(child_link).to_have_count(1)
    child_link.click()
    expect(page.get_by_test_id("parent-link")).to_contain_text(parent["id"])
    expect(page.get_by_test_id("instance-status")).to_have_text("WAITING")


def test_counts_per_status_match_the_engine(engine: EngineProcess, rest: Rest, page: Page) -> None:
    page.goto(f"{engine.rest_url}/ui/#/instances")
    counts = rest.ok("GET", "/v1/instances/counts")
    expect(page.get_by_test_id("count-ALL")).to_have_text(f"All {counts['total']}")
    for status, count in counts["counts"].items():
        expect(page.get_by_test_id(f"count-{status}")).to_have_text(f"{status} {count}")
    expect(page.get_by_test_id("pager")).to_contain_text(f"{counts['total']} instances")
    page.get_by_test_id("count-WAITING").click()
    expect(page.get_by_test_id("filter-status")).to_have_value("WAITING")
    rows = page.get_by_test_id("instances-table").locator("tbody tr")
    expect(rows).to_have_count(counts["counts"]["WAITING"])
    page.get_by_test_id("count-ALL").click()
    shot(page, "instances-overview")


def test_a_fired_timer_is_highlighted_on_the_diagram(
    engine: EngineProcess, rest: Rest, page: Page
) -> None:
    rest.upload(
        {
            "id": "CONSOLE::timer",
            "name": "Timer",
            "steps": [
                {"id": "hold", "name": "Hold", "type": "WAIT", "nextStep": "end",
                 "boundaryEvents": [{"type": "TIMER", "duration": "PT0S", "interrupting": False,
                                     "targetStepId": "remind"}]},
                {"id": "remind", "name": "Remind", "type": "SERVICE_TASK",
                 "jobType": "console-remind"},
                {"id": "end", "name": "End", "type": "END"},
            ],
        }
    )  # fmt: skip
    instance = rest.start("CONSOLE::timer", {}, key())
    open_instance(page, engine, instance["id"])

    # the timer sweeper fires it within a sweep interval; the page follows by itself
    fired = page.locator(".react-flow__edge.edge-fired")
    expect(fired).to_have_count(1, timeout=15_000)
    expect(page.locator('[data-step-id="remind"] .step-status')).to_have_text("RUNNING")
    expect(page.locator('[data-step-id="hold"] .step-status')).to_have_text("RUNNING")
    page.get_by_test_id("tab-timeline").click()
    expect(page.get_by_test_id("timeline")).to_contain_text("timer fired → remind")
    shot(page, "timer-fired")
    rest.ok("POST", f"/v1/instances/{instance['id']}/cancel", {"reason": "done"})
