"""Polling, concurrency, backoff, leases, shutdown and lifecycle."""

from __future__ import annotations

import asyncio
import datetime
import logging
import os
import signal
import threading
from typing import Any

import aiohttp
import pytest

from rochallor_sdk import ApiError, ConfigurationError, LeaseLost, Registry, TransportError, Worker
from rochallor_sdk._worker import backoff_delay
from rochallor_sdk.testing import InMemoryJobClient, lease_lost

from ._helpers import make_worker, settings

# --- concurrency and polling -------------------------------------------------------------


async def test_bounded_concurrency_and_batch_polls_ask_for_free_slots() -> None:
    running = 0
    peak = 0
    release = asyncio.Event()
    three_running = asyncio.Event()
    registry = Registry()

    @registry.register("work")
    async def work(ctx: dict[str, Any]) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        if running == 3:
            three_running.set()
        await release.wait()
        running -= 1

    fake = InMemoryJobClient()
    ids = [fake.add_job("work") for _ in range(10)]
    async with make_worker(registry, fake, parallelism=3) as worker:
        await asyncio.wait_for(three_running.wait(), 5)
        assert worker.in_flight == 3
        polls_while_full = len(fake.polls)
        await asyncio.sleep(0.05)  # the loop must idle, not poll with maxJobs=0
        assert len(fake.polls) == polls_while_full
        release.set()
        await fake.wait_until(lambda: all(i in fake.completed for i in ids))

    assert peak == 3
    assert fake.polls[0].max_jobs == 3
    assert all(1 <= p.max_jobs <= 3 for p in fake.polls)
    assert all(p.job_types == ("work",) for p in fake.polls)


async def test_max_jobs_is_the_number_of_free_slots() -> None:
    release = asyncio.Event()
    registry = Registry()

    @registry.register("slow")
    async def slow(ctx: dict[str, Any]) -> None:
        await release.wait()

    fake = InMemoryJobClient()
    fake.add_job("slow")
    async with make_worker(registry, fake, parallelism=4) as worker:
        await fake.wait_until(lambda: worker.in_flight == 1 and len(fake.polls) >= 2)
        assert fake.polls[0].max_jobs == 4
        assert fake.polls[-1].max_jobs == 3
        release.set()


async def test_long_poll_wait_is_sent_and_holds_the_poll() -> None:
    registry = Registry()
    registry.register("x")(lambda ctx: None)
    fake = InMemoryJobClient(long_poll=True)
    async with make_worker(registry, fake, long_poll_wait=5.0, poll_interval=0.01):
        await fake.wait_until(lambda: len(fake.polls) == 1)
        await asyncio.sleep(0.1)
        # A held poll: no re-poll although poll_interval is 10 ms.
        assert len(fake.polls) == 1
        job_id = fake.add_job("x")  # answers the held poll at once
        await fake.wait_until(lambda: job_id in fake.completed, within=1)
    assert fake.polls[0].wait == 5.0


async def test_engine_ignoring_long_poll_gets_poll_interval_pauses() -> None:
    registry = Registry()
    registry.register("x")(lambda ctx: None)
    fake = InMemoryJobClient(long_poll=False)  # answers empty polls immediately
    async with make_worker(registry, fake, long_poll_wait=5.0, poll_interval=0.1):
        await asyncio.sleep(0.35)
    # ~4 polls in 0.35 s at a 0.1 s interval; a hot loop would make thousands.
    assert 2 <= len(fake.polls) <= 6
    gaps = [b.at - a.at for a, b in zip(fake.polls, fake.polls[1:], strict=False)]
    assert all(gap >= 0.09 for gap in gaps)


# --- backoff -----------------------------------------------------------------------------


def test_backoff_delay_grows_caps_and_keeps_a_jitter_floor() -> None:
    low = [backoff_delay(n, 0.5, 30.0, rand=lambda: 0.0) for n in range(1, 10)]
    high = [backoff_delay(n, 0.5, 30.0, rand=lambda: 0.999999) for n in range(1, 10)]
    assert low == [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 15.0, 15.0]
    assert all(h < 2 * lo for h, lo in zip(high, low, strict=True))
    assert max(high) < 30.0
    assert backoff_delay(10_000, 0.5, 30.0) <= 30.0  # no overflow for long outages


@pytest.mark.parametrize(
    "error",
    [
        TransportError("connection refused"),
        ApiError("boom", status=500, code="internal-error"),
        RuntimeError("unexpected"),
    ],
    ids=["transport", "server-error", "other"],
)
async def test_poll_errors_back_off_instead_of_hot_looping(error: Exception) -> None:
    registry = Registry()
    registry.register("x")(lambda ctx: None)
    fake = InMemoryJobClient()
    fake.poll_error = error
    async with make_worker(registry, fake, backoff_initial=0.02, backoff_max=0.1):
        await asyncio.sleep(0.5)
        failing_polls = len(fake.polls)
        # Recovery: the next successful poll runs jobs again.
        fake.poll_error = None
        job_id = fake.add_job("x")
        await fake.wait_until(lambda: job_id in fake.completed, within=2)
    # Delays 0.01-0.02, 0.02-0.04, 0.04-0.08, then 0.05-0.1: at most ~14 calls in 0.5 s.
    assert 3 <= failing_polls <= 15
    gaps = [b.at - a.at for a, b in zip(fake.polls, fake.polls[1:failing_polls], strict=False)]
    assert all(gap >= 0.01 for gap in gaps)
    assert gaps[-1] >= 0.05  # grown to the cap's floor


async def test_backoff_sleep_is_cut_short_by_stop() -> None:
    registry = Registry()
    registry.register("x")(lambda ctx: None)
    fake = InMemoryJobClient()
    fake.poll_error = TransportError("down")
    worker = make_worker(registry, fake, backoff_initial=60.0, backoff_max=60.0)
    async with worker:
        await fake.wait_until(lambda: len(fake.polls) == 1)
        started = asyncio.get_running_loop().time()
    assert asyncio.get_running_loop().time() - started < 1.0
    assert len(fake.polls) == 1


# --- leases ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_slow_handler_gets_its_lease_extended(kind: str) -> None:
    fake = InMemoryJobClient(lease=0.3)  # extension due when 0.1 s is left
    two_extensions = threading.Event()
    registry = Registry()
    seen: list[bool] = []

    def slow(ctx: dict[str, Any]) -> dict[str, Any]:
        two_extensions.wait(5)
        seen.append(ctx["leaseLost"].is_set())
        return {"done": True}

    async def aslow(ctx: dict[str, Any]) -> dict[str, Any]:
        await fake.wait_until(lambda: len(fake.extensions) >= 2)
        seen.append(ctx["leaseLost"].is_set())
        return {"done": True}

    registry.register("slow")(slow if kind == "sync" else aslow)
    job_id = fake.add_job("slow")
    worker = make_worker(registry, fake)
    async with worker:
        await fake.wait_until(lambda: len(fake.extensions) >= 2)
        two_extensions.set()
        await fake.wait_until(lambda: job_id in fake.completed)

    assert fake.extensions[:2] == [job_id, job_id]
    assert seen == [False]
    assert fake.failures == []
    ok = worker.metrics.registry.get_sample_value(
        "rochallor_worker_lease_extensions_total", {"outcome": "ok"}
    )
    assert ok is not None and ok >= 2


async def test_fast_handler_needs_no_extension() -> None:
    registry = Registry()
    registry.register("fast")(lambda ctx: {"ok": 1})
    fake = InMemoryJobClient(lease=30)
    job_id = fake.add_job("fast")
    async with make_worker(registry, fake):
        await fake.wait_until(lambda: job_id in fake.completed)
    assert fake.extensions == []


async def test_lease_lost_cancels_an_async_handler_and_reports_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake = InMemoryJobClient(lease=0.15)
    fake.on_extend = lease_lost
    cancelled = asyncio.Event()
    registry = Registry()

    @registry.register("slow")
    async def slow(ctx: dict[str, Any]) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            assert ctx["leaseLost"].is_set()
            cancelled.set()
            raise

    job_id = fake.add_job("slow")
    worker = make_worker(registry, fake, parallelism=1)
    with caplog.at_level(logging.WARNING, logger="rochallor_sdk.worker"):
        async with worker:
            await asyncio.wait_for(cancelled.wait(), 5)
            await fake.wait_until(lambda: worker.in_flight == 0)

    assert fake.extensions == [job_id]
    assert fake.completions == [] and fake.failures == []
    assert "lease lost" in caplog.text
    assert (
        worker.metrics.registry.get_sample_value(
            "rochallor_worker_leases_lost_total", {"job_type": "slow"}
        )
        == 1.0
    )


async def test_lease_lost_sets_the_flag_of_a_sync_handler_and_late_completion_is_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake = InMemoryJobClient(lease=0.15)
    fake.on_extend = lease_lost
    registry = Registry()

    @registry.register("slow")
    def slow(ctx: dict[str, Any]) -> dict[str, Any]:
        noticed = ctx["leaseLost"].wait(5)
        return {"noticed": noticed}

    job_id = fake.add_job("slow")
    with caplog.at_level(logging.WARNING, logger="rochallor_sdk.worker"):
        async with make_worker(registry, fake):
            await fake.wait_until(lambda: job_id in fake.completed)

    assert fake.completed[job_id] == {"noticed": True}
    assert "lease lost" in caplog.text
    assert "late completion" in caplog.text


async def test_lease_lost_then_retryable_failure_is_not_charged() -> None:
    fake = InMemoryJobClient(lease=0.15)
    fake.on_extend = lease_lost
    registry = Registry()

    @registry.register("slow")
    def slow(ctx: dict[str, Any]) -> None:
        ctx["leaseLost"].wait(5)
        raise RuntimeError("gave up")

    fake.add_job("slow", retries=3)
    # parallelism=1: the poll after the job ends wakes wait_until below.
    async with make_worker(registry, fake, parallelism=1) as worker:
        await fake.wait_until(lambda: len(fake.extensions) == 1)
        await fake.wait_until(lambda: worker.in_flight == 0)
    assert fake.failures == []


async def test_lease_expiring_while_the_engine_is_unreachable_counts_as_lost() -> None:
    fake = InMemoryJobClient(lease=0.2)

    def unreachable(job_id: str) -> datetime.datetime:
        raise TransportError("connection refused")

    fake.on_extend = unreachable
    flagged = threading.Event()
    registry = Registry()

    @registry.register("slow")
    def slow(ctx: dict[str, Any]) -> dict[str, Any]:
        flagged.set() if ctx["leaseLost"].wait(5) else None
        return {}

    job_id = fake.add_job("slow")
    async with make_worker(registry, fake):
        await fake.wait_until(lambda: job_id in fake.completed)
    assert flagged.is_set()
    assert len(fake.extensions) >= 2  # retried before the lease ran out


# --- shutdown ----------------------------------------------------------------------------


async def test_graceful_stop_stops_polling_and_drains_in_flight_jobs() -> None:
    gate = asyncio.Event()
    registry = Registry()

    @registry.register("slow")
    async def slow(ctx: dict[str, Any]) -> dict[str, Any]:
        await gate.wait()
        return {"finished": True}

    fake = InMemoryJobClient()
    job_id = fake.add_job("slow")
    worker = make_worker(registry, fake, shutdown_timeout=5)
    run = asyncio.create_task(worker.run_async())
    await fake.wait_until(lambda: worker.in_flight == 1)
    stopping = asyncio.create_task(worker.stop())
    await asyncio.sleep(0.05)
    assert not stopping.done()  # waits for the in-flight job
    polls = len(fake.polls)
    gate.set()
    await asyncio.wait_for(stopping, 5)
    await run
    assert fake.completed[job_id] == {"finished": True}
    assert len(fake.polls) == polls  # no poll after stop
    assert fake.failures == []
    assert fake.closed is False  # an injected client belongs to the caller


async def test_jobs_exceeding_the_shutdown_timeout_are_failed_as_retryable(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sync_gate = threading.Event()
    async_cancelled = asyncio.Event()
    registry = Registry()

    @registry.register("stuck-sync")
    def stuck_sync(ctx: dict[str, Any]) -> None:
        ctx["leaseLost"].wait(5)  # cooperative: returns once the worker lets go
        sync_gate.set()

    @registry.register("stuck-async")
    async def stuck_async(ctx: dict[str, Any]) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            async_cancelled.set()
            raise

    @registry.register("quick")
    async def quick(ctx: dict[str, Any]) -> dict[str, Any]:
        return {"quick": True}

    fake = InMemoryJobClient()
    sync_id = fake.add_job("stuck-sync", retries=1)
    async_id = fake.add_job("stuck-async", retries=1)
    last_try = fake.add_job("stuck-async", retries=0)
    quick_id = fake.add_job("quick")
    worker = make_worker(registry, fake, shutdown_timeout=0.2)
    with caplog.at_level(logging.WARNING, logger="rochallor_sdk.worker"):
        async with worker:
            await fake.wait_until(lambda: worker.in_flight == 3 and quick_id in fake.completed)

    assert async_cancelled.is_set()
    assert sync_gate.wait(5)
    failed = {f.job_id: f for f in fake.failures}
    assert set(failed) == {sync_id, async_id}
    assert all(f.retryable for f in failed.values())
    assert all("shut down" in f.error_message for f in failed.values())
    # With no retry left a retryable failure would fail the instance: left to lease expiry.
    assert last_try not in failed and last_try not in fake.completed
    assert "no retry left" in caplog.text
    assert worker.in_flight == 0


async def test_cancelling_run_async_drains_then_propagates() -> None:
    gate = asyncio.Event()
    registry = Registry()

    @registry.register("slow")
    async def slow(ctx: dict[str, Any]) -> dict[str, Any]:
        await gate.wait()
        return {"ok": True}

    fake = InMemoryJobClient()
    job_id = fake.add_job("slow")
    worker = make_worker(registry, fake, shutdown_timeout=5)
    run = asyncio.create_task(worker.run_async())
    await fake.wait_until(lambda: worker.in_flight == 1)
    run.cancel()
    await asyncio.sleep(0.01)
    assert worker.stopping and not run.done()
    gate.set()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert fake.completed[job_id] == {"ok": True}


async def test_sigterm_stops_the_worker() -> None:
    registry = Registry()
    registry.register("x")(lambda ctx: None)
    fake = InMemoryJobClient()
    worker = Worker(registry, settings=settings(), client=fake, handle_signals=True)
    run = asyncio.create_task(worker.run_async())
    await fake.wait_until(lambda: len(fake.polls) >= 1)
    assert worker._signals, "signal handlers must be installed in the main thread"
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.wait_for(run, 5)
    assert worker.stopping
    assert worker._signals == []  # handlers removed again


# --- lifecycle and metrics ---------------------------------------------------------------


async def test_empty_registry_is_rejected() -> None:
    with pytest.raises(ConfigurationError):
        async with make_worker(Registry(), InMemoryJobClient()):
            pass


async def test_a_worker_runs_once() -> None:
    registry = Registry()
    registry.register("x")(lambda ctx: None)
    worker = make_worker(registry, InMemoryJobClient())
    async with worker:
        pass
    with pytest.raises(RuntimeError):
        await worker.run_async()


async def test_stop_before_start_is_harmless() -> None:
    registry = Registry()
    registry.register("x")(lambda ctx: None)
    await make_worker(registry, InMemoryJobClient()).stop()


async def test_metrics_are_recorded_and_served() -> None:
    registry = Registry()
    registry.register("ok")(lambda ctx: {"a": 1})
    fake = InMemoryJobClient()
    job_id = fake.add_job("ok")
    worker = make_worker(registry, fake, metrics_port=0)
    async with worker:
        await fake.wait_until(lambda: job_id in fake.completed)
        assert worker.metrics_bound_port
        base = f"http://127.0.0.1:{worker.metrics_bound_port}"
        async with aiohttp.ClientSession() as session:
            async with session.get(base + "/metrics") as response:
                body = await response.text()
            async with session.get(base + "/healthz") as response:
                health = response.status

    sample = worker.metrics.registry.get_sample_value
    assert sample("rochallor_worker_jobs_started_total", {"job_type": "ok"}) == 1.0
    assert sample("rochallor_worker_jobs_completed_total", {"job_type": "ok"}) == 1.0
    assert sample("rochallor_worker_handler_duration_seconds_count", {"job_type": "ok"}) == 1.0
    assert (sample("rochallor_worker_poll_duration_seconds_count") or 0) >= 1
    assert sample("rochallor_worker_jobs_in_flight") == 0.0
    assert 'rochallor_worker_jobs_completed_total{job_type="ok"} 1.0' in body
    assert health == 200


async def test_two_workers_in_one_process_have_separate_metrics() -> None:
    registry = Registry()
    registry.register("x")(lambda ctx: None)
    a = make_worker(registry, InMemoryJobClient())
    b = make_worker(registry, InMemoryJobClient())
    a.metrics.jobs_started.labels("x").inc()
    assert b.metrics.registry.get_sample_value(
        "rochallor_worker_jobs_started_total", {"job_type": "x"}
    ) in (None, 0.0)


def test_lease_lost_hook_raises_lease_lost() -> None:
    with pytest.raises(LeaseLost):
        lease_lost("j")


def test_run_blocks_until_stopped() -> None:
    registry = Registry()
    fake = InMemoryJobClient()
    worker = make_worker(registry, fake)

    @registry.register("last")
    async def last(ctx: dict[str, Any]) -> dict[str, Any]:
        worker.request_stop()  # on the loop's thread, as a signal handler would
        return {"stopped": True}

    job_id = fake.add_job("last")
    worker.run()
    assert fake.completed[job_id] == {"stopped": True}
    assert worker.stopping and worker.in_flight == 0
