"""Group commit: :class:`rochallor_server.service.batching.Batcher`."""

from __future__ import annotations

import asyncio

import pytest

from rochallor_server.service.batching import Batcher, Pending


class Recorder:
    def __init__(self, *, bad: int | None = None, delay: float = 0.001) -> None:
        self.batches: list[list[int]] = []
        self.bad = bad
        self.delay = delay

    async def process(self, batch: list[Pending[int, int]]) -> list[Pending[int, int]]:
        self.batches.append([p.item for p in batch])
        await asyncio.sleep(self.delay)
        if self.bad is not None and self.bad in (p.item for p in batch):
            raise ValueError(f"bad item {self.bad}")
        for pending in batch:
            pending.done(pending.item * 10)
        return []


async def test_requests_arriving_together_are_processed_together() -> None:
    recorder = Recorder()
    batcher: Batcher[int, int] = Batcher(recorder.process, name="t", max_size=4, runners=1)
    results = await asyncio.gather(*(batcher.submit(n) for n in range(10)))
    assert results == [n * 10 for n in range(10)]
    assert recorder.batches == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


async def test_a_lone_request_is_a_batch_of_one_and_runners_end_when_idle() -> None:
    recorder = Recorder()
    batcher: Batcher[int, int] = Batcher(recorder.process, name="t", max_size=8, runners=2)
    assert await batcher.submit(7) == 70
    await batcher.drain()
    assert recorder.batches == [[7]]
    assert not batcher._runners


async def test_a_failing_batch_is_run_again_one_by_one() -> None:
    recorder = Recorder(bad=2)
    batcher: Batcher[int, int] = Batcher(recorder.process, name="t", max_size=8, runners=1)
    outcomes = await asyncio.gather(*(batcher.submit(n) for n in range(4)), return_exceptions=True)
    assert outcomes[:2] == [0, 10] and outcomes[3] == 30
    assert isinstance(outcomes[2], ValueError)
    assert recorder.batches == [[0, 1, 2, 3], [0], [1], [2], [3]]


async def test_a_request_the_batch_leaves_unsettled_fails() -> None:
    async def forgetful(batch: list[Pending[int, int]]) -> list[Pending[int, int]]:
        batch[0].done(1)
        return []

    batcher: Batcher[int, int] = Batcher(forgetful, name="t", max_size=8, runners=1)
    first, second = await asyncio.gather(
        batcher.submit(1), batcher.submit(2), return_exceptions=True
    )
    assert first == 1
    assert isinstance(second, RuntimeError)
    with pytest.raises(RuntimeError, match="unsettled"):
        raise second


async def test_drain_waits_for_queued_requests() -> None:
    recorder = Recorder(delay=0.01)
    batcher: Batcher[int, int] = Batcher(recorder.process, name="t", max_size=1, runners=1)
    tasks = [asyncio.create_task(batcher.submit(n)) for n in range(3)]
    await asyncio.sleep(0)
    await batcher.drain()
    assert all(t.done() for t in tasks)
    assert [t.result() for t in tasks] == [0, 10, 20]


async def test_requests_returned_by_the_batch_lead_the_next_one() -> None:
    """A request that cannot share a batch (here: an even item after another even one)."""
    batches: list[list[int]] = []

    async def one_even_per_batch(batch: list[Pending[int, int]]) -> list[Pending[int, int]]:
        batches.append([p.item for p in batch])
        await asyncio.sleep(0)
        later, seen_even = [], False
        for pending in batch:
            if pending.item % 2 == 0 and seen_even:
                later.append(pending)
                continue
            seen_even = seen_even or pending.item % 2 == 0
            pending.done(pending.item)
        return later

    batcher: Batcher[int, int] = Batcher(one_even_per_batch, name="t", max_size=8, runners=1)
    assert await asyncio.gather(*(batcher.submit(n) for n in (0, 1, 2, 4, 3))) == [0, 1, 2, 4, 3]
    assert batches == [[0, 1, 2, 4, 3], [2, 4], [4]]
