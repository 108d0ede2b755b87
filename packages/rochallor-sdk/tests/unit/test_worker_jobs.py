"""Handler outcomes: context, merge, failures, result validation, threads."""

from __future__ import annotations

import asyncio
import math
import threading
from types import SimpleNamespace
from typing import Any

import pytest

from rochallor_sdk import NonRetryableError, Registry
from rochallor_sdk.testing import InMemoryJobClient

from ._helpers import make_worker


async def test_front_page_example_works_as_written() -> None:
    charged: list[str] = []

    class Gateway:
        def charge(self, order_id: str) -> SimpleNamespace:
            charged.append(order_id)
            return SimpleNamespace(status="CHARGED")

    payment_gateway = Gateway()
    registry = Registry()

    @registry.register("charge-payment")
    def charge_payment(ctx: dict) -> dict:  # type: ignore[type-arg]
        result = payment_gateway.charge(ctx["variables"]["orderId"])
        return {"paymentStatus": result.status}  # merged into instance variables

    fake = InMemoryJobClient()
    job_id = fake.add_job("charge-payment", {"orderId": "o-42"})
    async with make_worker(registry, fake):
        await fake.wait_until(lambda: job_id in fake.completed)

    assert charged == ["o-42"]
    assert fake.completions == [(job_id, "test-worker", {"paymentStatus": "CHARGED"})]
    assert fake.failures == []


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_handler_receives_the_job_context(kind: str) -> None:
    seen: list[dict[str, Any]] = []
    registry = Registry()

    if kind == "sync":

        @registry.register("inspect")
        def sync_handler(ctx: dict[str, Any]) -> None:
            seen.append(ctx)

    else:

        @registry.register("inspect")
        async def async_handler(ctx: dict[str, Any]) -> None:
            seen.append(ctx)

    fake = InMemoryJobClient()
    job_id = fake.add_job("inspect", {"n": 1, "nested": {"a": [1, 2]}}, retries=2)
    async with make_worker(registry, fake):
        await fake.wait_until(lambda: job_id in fake.completed)

    (ctx,) = seen
    assert {k: v for k, v in ctx.items() if k not in ("lockExpiresAt", "leaseLost")} == {
        "id": job_id,
        "jobType": "inspect",
        "instanceId": "instance-1",
        "stepId": "step-inspect",
        "stepExecutionId": "exec-1",
        "retriesRemaining": 2,
        "variables": {"n": 1, "nested": {"a": [1, 2]}},
    }
    assert isinstance(ctx["lockExpiresAt"], str) and ctx["lockExpiresAt"].endswith("+00:00")
    assert isinstance(ctx["leaseLost"], threading.Event)
    assert not ctx["leaseLost"].is_set()


@pytest.mark.parametrize("returned", [None, {}], ids=["none", "empty"])
async def test_none_or_empty_result_completes_without_variables(returned: Any) -> None:
    registry = Registry()
    registry.register("noop")(lambda ctx: returned)
    fake = InMemoryJobClient()
    job_id = fake.add_job("noop")
    async with make_worker(registry, fake):
        await fake.wait_until(lambda: job_id in fake.completed)
    assert fake.completed[job_id] == {}
    assert fake.failures == []


async def test_async_handler_result_is_merged() -> None:
    registry = Registry()

    @registry.register("add")
    async def add(ctx: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(0)
        return {"sum": ctx["variables"]["a"] + ctx["variables"]["b"], "tuple": (1, 2)}

    fake = InMemoryJobClient()
    job_id = fake.add_job("add", {"a": 2, "b": 3})
    async with make_worker(registry, fake):
        await fake.wait_until(lambda: job_id in fake.completed)
    # Values are sent as JSON: the tuple arrives as a list.
    assert fake.completed[job_id] == {"sum": 5, "tuple": [1, 2]}


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_plain_exception_fails_retryable_with_its_message(kind: str) -> None:
    registry = Registry()

    def boom(ctx: dict[str, Any]) -> None:
        raise RuntimeError("gateway timeout")

    async def aboom(ctx: dict[str, Any]) -> None:
        raise RuntimeError("gateway timeout")

    registry.register("boom")(boom if kind == "sync" else aboom)
    fake = InMemoryJobClient()
    job_id = fake.add_job("boom")
    worker = make_worker(registry, fake)
    async with worker:
        await fake.wait_until(lambda: len(fake.failures) == 1)
    (failure,) = fake.failures
    assert (failure.job_id, failure.retryable, failure.error_message) == (
        job_id,
        True,
        "gateway timeout",
    )
    assert failure.worker_id == "test-worker"
    assert fake.completed == {}
    assert (
        worker.metrics.registry.get_sample_value(
            "rochallor_worker_jobs_failed_total", {"job_type": "boom", "retryable": "true"}
        )
        == 1.0
    )


async def test_exception_without_message_reports_its_type_name() -> None:
    registry = Registry()

    def boom(ctx: dict[str, Any]) -> None:
        raise KeyError

    registry.register("boom")(boom)
    fake = InMemoryJobClient()
    fake.add_job("boom")
    async with make_worker(registry, fake):
        await fake.wait_until(lambda: len(fake.failures) == 1)
    assert fake.failures[0].error_message == "KeyError"


async def test_flaky_handler_is_retried_until_it_succeeds() -> None:
    attempts: list[int] = []
    registry = Registry()

    @registry.register("flaky")
    def flaky(ctx: dict[str, Any]) -> dict[str, Any]:
        attempts.append(ctx["retriesRemaining"])
        if ctx["retriesRemaining"] == 2:
            raise RuntimeError("first attempt fails")
        return {"ok": True}

    fake = InMemoryJobClient()
    job_id = fake.add_job("flaky", retries=2)
    async with make_worker(registry, fake):
        await fake.wait_until(lambda: job_id in fake.completed)
    assert attempts == [2, 1]
    assert [f.retryable for f in fake.failures] == [True]
    assert fake.completed[job_id] == {"ok": True}


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_non_retryable_error_fails_without_retry(kind: str) -> None:
    class CardDeclined(NonRetryableError):
        pass

    registry = Registry()

    def declined(ctx: dict[str, Any]) -> None:
        raise CardDeclined("card declined")

    async def adeclined(ctx: dict[str, Any]) -> None:
        raise CardDeclined("card declined")

    registry.register("pay")(declined if kind == "sync" else adeclined)
    fake = InMemoryJobClient()
    job_id = fake.add_job("pay", retries=3)
    async with make_worker(registry, fake):
        await fake.wait_until(lambda: len(fake.failures) == 1)
    (failure,) = fake.failures
    assert (failure.job_id, failure.retryable, failure.error_message) == (
        job_id,
        False,
        "card declined",
    )
    assert fake.queue == []  # not re-offered despite retries left


@pytest.mark.parametrize(
    ("returned", "expected"),
    [
        ({"when": object()}, "not JSON-serialisable"),
        ({"items": {1, 2}}, "not JSON-serialisable"),
        ({"ratio": math.nan}, "not JSON-serialisable"),
        ({1: "x"}, "keys must be strings"),
        ([1, 2], "must return a dict or None, got list"),
        ("done", "must return a dict or None, got str"),
        (42, "must return a dict or None, got int"),
    ],
    ids=["object", "set", "nan", "int-key", "list", "str", "int"],
)
async def test_unsendable_result_is_a_non_retryable_failure(returned: Any, expected: str) -> None:
    registry = Registry()
    registry.register("bad")(lambda ctx: returned)
    fake = InMemoryJobClient()
    job_id = fake.add_job("bad", retries=3)
    async with make_worker(registry, fake):
        await fake.wait_until(lambda: len(fake.failures) == 1)
    (failure,) = fake.failures
    assert failure.job_id == job_id
    assert failure.retryable is False
    assert expected in failure.error_message
    assert fake.completed == {}


async def test_sync_handler_runs_in_a_thread_and_never_blocks_the_loop() -> None:
    gate = threading.Event()
    threads: dict[str, int] = {}
    registry = Registry()

    @registry.register("blocking")
    def blocking(ctx: dict[str, Any]) -> dict[str, Any]:
        threads["handler"] = threading.get_ident()
        # Blocks its thread until the async handler below runs on the loop.
        return {"released": gate.wait(timeout=5)}

    @registry.register("opener")
    async def opener(ctx: dict[str, Any]) -> None:
        gate.set()

    fake = InMemoryJobClient()
    blocked = fake.add_job("blocking")
    async with make_worker(registry, fake, parallelism=2):
        await fake.wait_until(lambda: "handler" in threads)
        fake.add_job("opener")
        await fake.wait_until(lambda: blocked in fake.completed)

    assert fake.completed[blocked] == {"released": True}
    assert threads["handler"] != threading.get_ident()


async def test_sync_callable_returning_a_coroutine_is_awaited() -> None:
    async def produce(ctx: dict[str, Any]) -> dict[str, Any]:
        return {"from": "coroutine"}

    class Handler:
        def __call__(self, ctx: dict[str, Any]) -> Any:
            return produce(ctx)

    registry = Registry()
    registry.register("wrapped")(Handler())
    fake = InMemoryJobClient()
    job_id = fake.add_job("wrapped")
    async with make_worker(registry, fake):
        await fake.wait_until(lambda: job_id in fake.completed)
    assert fake.completed[job_id] == {"from": "coroutine"}
