"""Handler failures against the real engine: retries, non-retryable failures, exhaustion."""

from __future__ import annotations

from typing import Any

import pytest

from rochallor_sdk import NonRetryableError, Registry, Worker

from ._engine import EngineProcess
from ._support import TRANSPORTS, admin, metric, service_task_flow, settings, wait_for_status


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_retryable_non_retryable_and_exhausted_failures(
    engine: EngineProcess, transport: str
) -> None:
    attempts: dict[str, list[int]] = {"flaky": [], "reject": [], "always-fails": []}
    registry = Registry()

    @registry.register("flaky")
    def flaky(ctx: dict[str, Any]) -> dict[str, Any]:
        attempts["flaky"].append(ctx["retriesRemaining"])
        if ctx["retriesRemaining"] == 2:
            raise RuntimeError("transient glitch")
        return {"flakyResult": "ok"}

    @registry.register("reject")
    def reject(ctx: dict[str, Any]) -> None:
        attempts["reject"].append(ctx["retriesRemaining"])
        raise NonRetryableError("card declined: insufficient funds")

    @registry.register("always-fails")
    async def always_fails(ctx: dict[str, Any]) -> None:
        attempts["always-fails"].append(ctx["retriesRemaining"])
        raise RuntimeError("always fails")

    async with admin(engine.url(transport), transport) as client:
        await client.upload_definition(service_task_flow("flaky-flow", "flaky", retry_count=2))
        await client.upload_definition(service_task_flow("reject-flow", "reject", retry_count=3))
        await client.upload_definition(
            service_task_flow("exhausted-flow", "always-fails", retry_count=1)
        )
        flaky_id = (await client.start_instance("flaky-flow", {"n": 1}))["id"]
        reject_id = (await client.start_instance("reject-flow", {"n": 2}))["id"]
        exhausted_id = (await client.start_instance("exhausted-flow", {"n": 3}))["id"]

        worker = Worker(
            registry,
            settings=settings(engine_url=engine.url(transport), transport=transport),
            handle_signals=False,
        )
        async with worker:
            flaky_final = await wait_for_status(client, flaky_id)
            reject_final = await wait_for_status(client, reject_id)
            exhausted_final = await wait_for_status(client, exhausted_id)

        # Retry, then success: the decrement is exactly one per retryable failure.
        assert flaky_final["status"] == "COMPLETED", flaky_final
        assert flaky_final["variables"] == {"n": 1, "flakyResult": "ok"}
        assert attempts["flaky"] == [2, 1]
        flaky_history = await client.get_history(flaky_id)
        # A retry reuses the step execution: one row for the task, attempt 1.
        assert [(h["stepId"], h["status"], h["attemptNumber"]) for h in flaky_history] == [
            ("task", "COMPLETED", 1),
            ("end", "COMPLETED", 1),
        ]

        # NonRetryableError: terminal at the first attempt, whatever the budget left.
        assert reject_final["status"] == "FAILED", reject_final
        assert reject_final["failureReason"] == "card declined: insufficient funds"
        assert attempts["reject"] == [3]
        reject_history = await client.get_history(reject_id)
        assert [(h["stepId"], h["status"], h["failureReason"]) for h in reject_history] == [
            ("task", "FAILED", "card declined: insufficient funds")
        ]

        # retryCount 1: two attempts, then FAILED with the handler's message.
        assert exhausted_final["status"] == "FAILED", exhausted_final
        assert exhausted_final["failureReason"] == "always fails"
        assert attempts["always-fails"] == [1, 0]

    failed = "rochallor_worker_jobs_failed_total"
    assert metric(worker, failed, job_type="flaky", retryable="true") == 1
    assert metric(worker, failed, job_type="reject", retryable="false") == 1
    assert metric(worker, failed, job_type="always-fails", retryable="true") == 2
    assert metric(worker, "rochallor_worker_jobs_completed_total", job_type="flaky") == 1
    assert metric(worker, "rochallor_worker_report_errors_total", operation="fail") == 0
