"""Group commit: :class:`rochallor_server.service.batching.Batcher`."""

from __future__ import annotations

import asyncio

import pytest

from rochallor_server.service.batching import Batcher, BatchFailed, Pending, Placement


class Recorder:
    def __init__(self, *, bad: int | None = None, delay: float = 0.001) -> None:
        self.batches: list[list[int]] = []
        self.bad = bad
        self.delay = delay

    async def process(self, batch: list[Pending[int, int]]) -> None:
        self.batches.append([p.item for p in batch])
        await asyncio.sleep(self.delay)
        if self.bad is not None and self.bad in (p.item for p in batch):
            raise ValueError(f"bad item {self.bad}")
        for pending in batch:
            pending.done(pending.item * 10)


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


async def test_a_failing_batch_fails_each_request_and_runs_nothing_again() -> None:
    """The batcher does not retry: each request learns that its shared batch failed (the
    retry policy decides what runs again); a batch of one fails with the error itself."""
    recorder = Recorder(bad=2)
    batcher: Batcher[int, int] = Batcher(recorder.process, name="t", max_size=8, runners=1)
    outcomes = await asyncio.gather(*(batcher.submit(n) for n in range(4)), return_exceptions=True)
    assert recorder.batches == [[0, 1, 2, 3]]
    for outcome in outcomes:
        assert isinstance(outcome, BatchFailed)
        assert isinstance(outcome.error, ValueError)
        assert outcome.__cause__ is outcome.error
    with pytest.raises(ValueError, match="bad item 2"):
        await batcher.submit(2)
    assert recorder.batches[-1] == [2]


async def test_a_request_submitted_alone_is_a_batch_of_its_own() -> None:
    recorder = Recorder(bad=2)
    batcher: Batcher[int, int] = Batcher(recorder.process, name="t", max_size=8, runners=1)
    outcomes = await asyncio.gather(
        batcher.submit(0),
        batcher.submit(1),
        batcher.submit(2, Placement.ALONE),
        batcher.submit(3, Placement.ALONE),
        batcher.submit(4),
        return_exceptions=True,
    )
    assert outcomes[:2] == [0, 10] and outcomes[3:] == [30, 40]
    assert isinstance(outcomes[2], ValueError)  # its own error, not BatchFailed
    # all submitted before the runner starts: the alone ones lead (the last one first), each
    # in a batch of its own, then the rest together
    assert recorder.batches == [[3], [2], [0, 1, 4]]


async def test_a_request_the_batch_leaves_unsettled_fails() -> None:
    async def forgetful(batch: list[Pending[int, int]]) -> None:
        batch[0].done(1)

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


async def test_a_request_sent_back_leads_the_very_next_batch() -> None:
    """A request the batch settles with an error its caller answers by submitting again at
    once (``Placement.NEXT``) is in the next batch, ahead of the queue, without any sleep."""
    batches: list[list[int]] = []

    class Later(Exception):
        pass

    async def one_even_per_batch(batch: list[Pending[int, int]]) -> None:
        batches.append([p.item for p in batch])
        await asyncio.sleep(0.001)
        seen_even = False
        for pending in batch:
            if pending.item % 2 == 0 and seen_even:
                pending.failed(Later())
                continue
            seen_even = seen_even or pending.item % 2 == 0
            pending.done(pending.item)

    batcher: Batcher[int, int] = Batcher(one_even_per_batch, name="t", max_size=3, runners=1)

    async def until_done(n: int) -> int:
        placement = Placement.QUEUED
        while True:
            try:
                return await batcher.submit(n, placement)
            except Later:
                placement = Placement.NEXT

    assert await asyncio.gather(*(until_done(n) for n in (0, 2, 4, 1, 3, 5))) == [0, 2, 4, 1, 3, 5]
    # 2 and 4 go back and lead the next batch, ahead of 1, 3, 5 waiting in the queue; there
    # 2 goes back again and leads the third
    assert batches == [[0, 2, 4], [4, 2, 1], [2, 3, 5]]


async def test_a_request_submitted_as_the_last_runner_ends_starts_a_new_one() -> None:
    """The runner found the queue empty and ended; its task's done callbacks have not run yet
    when the request arrives: it must not wait for a runner that is gone."""
    recorder = Recorder(delay=0)
    batcher: Batcher[int, int] = Batcher(recorder.process, name="t", max_size=8, runners=1)

    async def again_a_moment_later() -> int:
        await batcher.submit(1)
        await asyncio.sleep(0)  # the runner resumes after its batch, finds nothing, ends
        return await batcher.submit(2)

    assert await asyncio.wait_for(again_a_moment_later(), timeout=2) == 20
    assert recorder.batches == [[1], [2]]


async def test_cancelling_a_runner_fails_its_batch() -> None:
    recorder = Recorder(delay=10)
    batcher: Batcher[int, int] = Batcher(recorder.process, name="t", max_size=8, runners=1)
    call = asyncio.create_task(batcher.submit(1))
    await asyncio.sleep(0.01)
    [runner] = batcher._runners
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
