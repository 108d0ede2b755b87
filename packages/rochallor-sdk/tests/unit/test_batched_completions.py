"""Completions sent in groups (``complete_many``): batching, errors, fallback, shutdown."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pytest

from rochallor_sdk import ApiError, Conflict, NotFound, Registry, TransportError
from rochallor_sdk._completions import CompletionSender
from rochallor_sdk.testing import InMemoryJobClient

from ._helpers import make_worker

COMPLETED = "rochallor_worker_jobs_completed_total"
REPORT_ERRORS = "rochallor_worker_report_errors_total"


class GatedClient(InMemoryJobClient):
    """Holds every ``complete_many`` call at :attr:`gate` until it is set, so that
    completions can arrive while a call is in flight. Counts single ``complete`` calls."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.gate = asyncio.Event()
        self.gate.set()
        self.calls_started = 0
        self.single_calls: list[str] = []
        #: Raise this for the whole next ``complete_many`` call, then clear it.
        self.call_error: Exception | None = None

    async def complete_many(
        self, *, worker_id: str, completions: Sequence[tuple[str, Mapping[str, Any]]]
    ) -> list[Exception | None]:
        self.calls_started += 1
        await self.gate.wait()
        if self.call_error is not None:
            error, self.call_error = self.call_error, None
            self.batches.append([job_id for job_id, _ in completions])
            raise error
        return await super().complete_many(worker_id=worker_id, completions=completions)

    async def complete(
        self, job_id: str, *, worker_id: str, variables: Mapping[str, Any] | None
    ) -> None:
        self.single_calls.append(job_id)
        await super().complete(job_id, worker_id=worker_id, variables=variables)


async def eventually(predicate: Callable[[], bool], within: float = 5.0) -> None:
    """Wait for a condition that no recorded client call signals (``wait_until`` would)."""
    async with asyncio.timeout(within):
        while True:
            if predicate():
                return
            await asyncio.sleep(0.001)


def sample(worker: Any, name: str, **labels: str) -> float:
    value = worker.metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else float(value)


# --- the sender on its own ------------------------------------------------------------------


async def test_completions_arriving_during_a_call_form_the_next_calls_of_at_most_100() -> None:
    client = GatedClient()
    client.gate.clear()
    sender = CompletionSender(client, "w")
    sender.start()
    try:
        first = asyncio.create_task(sender.complete("j-0", {"n": 0}))
        await eventually(lambda: client.calls_started == 1)
        rest = [asyncio.create_task(sender.complete(f"j-{i}", {"n": i})) for i in range(1, 151)]
        await asyncio.sleep(0.01)
        assert client.calls_started == 1  # one call in flight at a time
        client.gate.set()
        assert await asyncio.gather(first, *rest) == [None] * 151
    finally:
        await sender.close()
    assert [len(batch) for batch in client.batches] == [1, 100, 50]
    assert [job_id for batch in client.batches for job_id in batch] == [
        f"j-{i}" for i in range(151)
    ]
    assert client.completed["j-7"] == {"n": 7}
    assert client.single_calls == []


async def test_per_item_errors_are_returned_to_their_callers() -> None:
    client = InMemoryJobClient()
    errors: dict[str, Exception] = {
        "gone": NotFound("job not found", status=404, operation="complete"),
        "taken": Conflict("held by another worker", status=409, operation="complete"),
    }

    def refuse(job_id: str) -> None:
        if job_id in errors:
            raise errors[job_id]

    client.on_complete = refuse
    sender = CompletionSender(client, "w")
    sender.start()
    try:
        results = await asyncio.gather(
            sender.complete("ok", {}), sender.complete("gone", {}), sender.complete("taken", {})
        )
        assert sender.batching  # a 404 for one job is not a missing endpoint
    finally:
        await sender.close()
    assert results == [None, errors["gone"], errors["taken"]]
    assert client.batches == [["ok", "gone", "taken"]]


async def test_close_hands_held_completions_back_to_be_sent_alone() -> None:
    client = GatedClient()
    client.gate.clear()
    sender = CompletionSender(client, "w")
    sender.start()
    in_flight = asyncio.create_task(sender.complete("a", {}))
    await eventually(lambda: client.calls_started == 1)
    queued = asyncio.create_task(sender.complete("b", {}))
    await asyncio.sleep(0)
    await sender.close()
    assert await asyncio.gather(in_flight, queued) == [None, None]
    assert client.single_calls == ["a", "b"]
    assert not sender.batching
    assert await sender.complete("c", {}) is None  # after close: alone, at once
    assert client.single_calls == ["a", "b", "c"]


async def test_a_client_without_complete_many_gets_single_calls() -> None:
    class OldClient(GatedClient):
        complete_many = None  # type: ignore[assignment]

    client = OldClient()
    sender = CompletionSender(client, "w")
    sender.start()
    try:
        assert not sender.batching
        assert await sender.complete("a", {"x": 1}) is None
    finally:
        await sender.close()
    assert client.single_calls == ["a"] and client.completed == {"a": {"x": 1}}


# --- the worker ------------------------------------------------------------------------------


async def test_worker_batches_completions_that_finish_while_a_call_is_in_flight() -> None:
    client = GatedClient()
    go = asyncio.Event()
    registry = Registry()

    @registry.register("first")
    async def first(ctx: dict[str, Any]) -> dict[str, Any]:
        return {"first": True}

    @registry.register("rest")
    async def rest(ctx: dict[str, Any]) -> dict[str, Any]:
        await go.wait()
        return {"n": ctx["variables"]["n"]}

    rest_ids = [client.add_job("rest", {"n": n}) for n in range(9)]
    worker = make_worker(registry, client, parallelism=10)
    async with worker:
        await eventually(lambda: worker.in_flight == 9)
        client.gate.clear()  # hold the next call
        first_id = client.add_job("first")
        await eventually(lambda: client.calls_started == 1)
        go.set()  # nine completions queue up behind the held call
        sender = worker._completions
        assert sender is not None
        await eventually(lambda: len(sender._queue) == 9)
        client.gate.set()
        await client.wait_until(lambda: len(client.completed) == 10)

    assert client.batches[0] == [first_id]
    assert sorted(client.batches[1]) == sorted(rest_ids)
    assert len(client.batches) == 2
    assert client.single_calls == []
    assert client.completed[rest_ids[3]] == {"n": 3}
    assert sample(worker, COMPLETED, job_type="rest") == 9
    assert sample(worker, COMPLETED, job_type="first") == 1


async def test_a_lone_completion_goes_out_at_once_in_its_own_call() -> None:
    client = InMemoryJobClient()
    registry = Registry()
    returned: list[float] = []

    @registry.register("one")
    async def one(ctx: dict[str, Any]) -> dict[str, Any]:
        returned.append(asyncio.get_running_loop().time())
        return {"ok": True}

    job_id = client.add_job("one")
    async with make_worker(registry, client):
        await client.wait_until(lambda: job_id in client.completed)
        completed_at = asyncio.get_running_loop().time()
    assert client.batches == [[job_id]]
    assert client.completions == [(job_id, "test-worker", {"ok": True})]
    assert completed_at - returned[0] < 0.1  # no timer between the handler and the call


async def test_per_item_errors_keep_the_single_call_retry_policy(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = GatedClient(lease=1.0)  # a completion is kept until its lease ends
    attempts: dict[str, int] = {}

    def flaky_engine(job_id: str) -> None:
        attempts[job_id] = attempts.get(job_id, 0) + 1
        if job_id == "down-once" and attempts[job_id] == 1:
            raise TransportError("connection reset", operation="complete")
        if job_id == "busy-twice" and attempts[job_id] <= 2:
            raise ApiError("overloaded", status=503, operation="complete")
        if job_id == "gone":
            raise NotFound("job not found", status=404, code="not-found", operation="complete")
        if job_id == "always-down":
            raise TransportError("connection refused", operation="complete")

    client.on_complete = flaky_engine
    registry = Registry()
    registry.register("work")(lambda ctx: {"done": ctx["id"]})
    ids = ["fine", "down-once", "busy-twice", "gone", "always-down"]
    for job_id in ids:
        client.add_job("work", job_id=job_id)
    worker = make_worker(registry, client, parallelism=8)
    with caplog.at_level(logging.ERROR, logger="rochallor_sdk.worker"):
        async with worker:
            await eventually(lambda: attempts.get("always-down", 0) > 3 and worker.in_flight == 0)

    # Retried: transport errors and 5xx (until the lease ends); dropped at once: the 404.
    kept = attempts.pop("always-down")
    assert attempts == {"fine": 1, "down-once": 2, "busy-twice": 3, "gone": 1}
    assert kept > 3
    attempts["always-down"] = kept
    assert set(client.completed) == {"fine", "down-once", "busy-twice"}
    assert sample(worker, COMPLETED, job_type="work") == 3
    assert sample(worker, REPORT_ERRORS, operation="complete") == 2
    assert "job gone: completion not accepted" in caplog.text
    assert "job always-down: completion not accepted" in caplog.text
    # Every attempt went through complete_many: a 404 for one job is not a missing endpoint.
    assert client.single_calls == []
    assert sum(len(batch) for batch in client.batches) == sum(attempts.values())


async def test_a_failed_batch_call_is_retried_for_each_of_its_completions() -> None:
    client = GatedClient()
    client.call_error = TransportError("engine restarting", operation="complete_many")
    registry = Registry()
    registry.register("work")(lambda ctx: {"ok": True})
    job_id = client.add_job("work")
    async with make_worker(registry, client) as worker:
        await client.wait_until(lambda: job_id in client.completed)
    assert client.batches == [[job_id], [job_id]]
    assert sample(worker, REPORT_ERRORS, operation="complete") == 0


async def test_a_refused_batch_call_is_not_retried() -> None:
    client = GatedClient()
    client.call_error = ApiError("completions must not be empty", status=400, operation="x")
    registry = Registry()
    registry.register("work")(lambda ctx: {"ok": True})
    client.add_job("work")
    async with make_worker(registry, client, parallelism=1) as worker:
        await eventually(lambda: sample(worker, REPORT_ERRORS, operation="complete") == 1)
    assert client.completed == {}
    assert len(client.batches) == 1


async def test_an_engine_without_the_batch_endpoint_gets_single_calls_for_good(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = GatedClient(batch_complete=False)
    registry = Registry()
    registry.register("work")(lambda ctx: {"n": ctx["variables"]["n"]})
    ids = [client.add_job("work", {"n": n}) for n in range(3)]
    with caplog.at_level(logging.INFO, logger="rochallor_sdk.worker"):
        async with make_worker(registry, client, parallelism=2) as worker:
            await client.wait_until(lambda: all(i in client.completed for i in ids))
            later = client.add_job("work", {"n": 3})
            await client.wait_until(lambda: later in client.completed)

    assert len(client.batches) == 1  # the refused call, and no other
    assert sorted(client.single_calls) == sorted([*ids, later])
    assert client.completed[later] == {"n": 3}
    assert sample(worker, COMPLETED, job_type="work") == 4
    assert sample(worker, REPORT_ERRORS, operation="complete") == 0
    notices = [r for r in caplog.records if "no batch completion endpoint" in r.getMessage()]
    assert len(notices) == 1 and notices[0].levelno == logging.INFO


async def test_stop_sends_the_queued_completions_before_the_worker_ends() -> None:
    client = GatedClient()
    go = asyncio.Event()
    registry = Registry()

    @registry.register("work")
    async def work(ctx: dict[str, Any]) -> dict[str, Any]:
        await go.wait()
        return {"id": ctx["id"]}

    ids = [client.add_job("work") for _ in range(5)]
    worker = make_worker(registry, client, parallelism=5, shutdown_timeout=5)
    run = asyncio.create_task(worker.run_async())
    await eventually(lambda: worker.in_flight == 5)
    client.gate.clear()
    go.set()
    await eventually(lambda: client.calls_started == 1)
    stopping = asyncio.create_task(worker.stop())
    await asyncio.sleep(0.05)
    assert not stopping.done()  # waits for the held call and the completions queued behind it
    client.gate.set()
    await asyncio.wait_for(stopping, 5)
    await run
    assert sorted(client.completed) == sorted(ids)
    assert sorted(job_id for batch in client.batches for job_id in batch) == sorted(ids)
    assert client.single_calls == []
    assert client.failures == []


async def test_a_completion_is_kept_through_an_outage_shorter_than_the_lease() -> None:
    """503 "unavailable" (the engine's database restarting) for a while: the completion is
    retried with backoff past ``COMPLETE_ATTEMPTS`` and lands before the lease ends."""
    client = GatedClient(lease=30.0)
    loop = asyncio.get_running_loop()
    outage_ends = loop.time() + 1.0
    attempts: list[float] = []

    def restarting_database(job_id: str) -> None:
        attempts.append(loop.time())
        if loop.time() < outage_ends:
            raise ApiError("database unavailable", status=503, operation="complete")

    client.on_complete = restarting_database
    registry = Registry()
    registry.register("work")(lambda ctx: {"done": True})
    job_id = client.add_job("work")
    worker = make_worker(registry, client)
    async with worker:
        await eventually(lambda: job_id in client.completed, within=10)
    assert len(attempts) > 3
    assert attempts[-1] >= outage_ends
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    assert max(gaps) <= 5.0  # bounded backoff
    assert sample(worker, REPORT_ERRORS, operation="complete") == 0
