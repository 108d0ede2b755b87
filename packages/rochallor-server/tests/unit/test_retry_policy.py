"""The retry policy (:mod:`rochallor_server.service.retry`), on attempts that fail as told."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rochallor_server.errors import (
    InstanceChanged,
    NotFound,
    StorageUnavailable,
    TransientStorageError,
)
from rochallor_server.service import retry
from rochallor_server.service.batching import Batcher, BatchFailed, Pending, Placement
from rochallor_server.service.retry import RetryPolicy, RunAfterBatch


class Script:
    """An attempt that raises the given errors in turn, then answers ``"ok"``; it records the
    placement each attempt was given."""

    def __init__(self, errors: Iterable[BaseException]) -> None:
        self.errors = list(errors)
        self.placements: list[Placement] = []

    async def __call__(self) -> str:
        self.placements.append(retry.placement())
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


class Sleeps:
    def __init__(self) -> None:
        self.slept: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.slept.append(seconds)


def policy(**limits: int) -> tuple[RetryPolicy, Sleeps]:
    sleeps = Sleeps()
    return RetryPolicy(sleep=sleeps, **limits), sleeps  # type: ignore[arg-type]


async def test_an_attempt_that_answers_runs_once_queued() -> None:
    run, sleeps = policy()
    script = Script([])
    assert await run.run(script, name="t") == "ok"
    assert script.placements == [Placement.QUEUED]
    assert sleeps.slept == []
    assert retry.placement() is Placement.QUEUED  # nothing leaks out of the run


async def test_a_stale_decision_is_made_again_up_to_the_limit() -> None:
    run, sleeps = policy(stale_attempts=3)
    stale: list[int] = []
    script = Script([InstanceChanged("a"), InstanceChanged("b")])
    assert await run.run(script, name="t", on_stale=lambda: stale.append(1)) == "ok"
    assert len(script.placements) == 3 and stale == [1, 1]
    assert len(sleeps.slept) == 2 and all(0 <= s <= 0.002 for s in sleeps.slept)

    script = Script([InstanceChanged(str(n)) for n in range(3)])
    with pytest.raises(InstanceChanged, match="2"):
        await run.run(script, name="t")
    assert len(script.placements) == 3


async def test_an_aborted_write_is_run_again_with_a_growing_backoff() -> None:
    run, sleeps = policy(aborted_attempts=4)
    script = Script([TransientStorageError("deadlock")] * 3)
    assert await run.run(script, name="t") == "ok"
    assert len(script.placements) == 4
    assert [s <= 0.01 * n for n, s in enumerate(sleeps.slept, 1)] == [True] * 3

    script = Script([TransientStorageError("deadlock")] * 4)
    with pytest.raises(TransientStorageError):
        await run.run(script, name="t")


async def test_an_event_sent_after_the_batch_leads_the_next_one_at_once() -> None:
    """Not an attempt: no pause, no limit (each time another event of the instance went
    first), and no stale count."""
    run, sleeps = policy(stale_attempts=2)
    stale: list[int] = []
    script = Script([RunAfterBatch()] * 100)
    assert await run.run(script, name="t", on_stale=lambda: stale.append(1)) == "ok"
    assert script.placements == [Placement.QUEUED] + [Placement.NEXT] * 100
    assert sleeps.slept == [] and stale == []


async def test_after_a_shared_batch_failed_the_event_is_written_alone() -> None:
    run, sleeps = policy()
    script = Script([BatchFailed(ValueError("bad row"), 5), RunAfterBatch()])
    assert await run.run(script, name="t") == "ok"
    assert script.placements == [Placement.QUEUED, Placement.ALONE, Placement.ALONE]
    assert sleeps.slept == []
    # alone, its own error is the answer
    script = Script([BatchFailed(ValueError("bad row"), 5), ValueError("bad row")])
    with pytest.raises(ValueError, match="bad row"):
        await run.run(script, name="t")
    assert script.placements == [Placement.QUEUED, Placement.ALONE]


async def test_a_batch_the_database_aborted_is_run_again_batched() -> None:
    run, sleeps = policy(aborted_attempts=2)
    script = Script([BatchFailed(TransientStorageError("deadlock"), 9)])
    assert await run.run(script, name="t") == "ok"
    assert script.placements == [Placement.QUEUED, Placement.QUEUED]
    assert len(sleeps.slept) == 1
    script = Script([BatchFailed(TransientStorageError("deadlock"), 9)] * 2)
    with pytest.raises(TransientStorageError, match="deadlock"):
        await run.run(script, name="t")


@pytest.mark.parametrize("error", [NotFound("gone"), StorageUnavailable("away"), KeyError("x")])
async def test_other_errors_are_the_answer(error: Exception) -> None:
    run, sleeps = policy()
    script = Script([error])
    with pytest.raises(type(error)):
        await run.run(script, name="t")
    assert len(script.placements) == 1 and sleeps.slept == []


_KINDS = {
    "stale": lambda: InstanceChanged("stale"),
    "aborted": lambda: TransientStorageError("aborted"),
    "after": RunAfterBatch,
    "batch": lambda: BatchFailed(ValueError("row"), 2),
    "batch-aborted": lambda: BatchFailed(TransientStorageError("aborted"), 2),
}


@settings(max_examples=200, deadline=None)
@given(
    kinds=st.lists(st.sampled_from(sorted(_KINDS)), max_size=30),
    stale_limit=st.integers(1, 6),
    aborted_limit=st.integers(1, 6),
)
def test_the_policy_matches_its_table(
    kinds: list[str], stale_limit: int, aborted_limit: int
) -> None:
    """Any sequence of failures: the run answers, or raises the error that ran out of its
    limit, after exactly the attempts the docstring's table allows; placements follow it."""
    run, _ = policy(stale_attempts=stale_limit, aborted_attempts=aborted_limit)
    script = Script([_KINDS[k]() for k in kinds])

    # the model
    stale = aborted = 0
    alone = False
    expected: list[Placement] = [Placement.QUEUED]
    raised: type[Exception] | None = None
    for kind in kinds:
        if kind == "batch":
            alone = True
            expected.append(Placement.ALONE)
            continue
        if kind == "after":
            expected.append(Placement.ALONE if alone else Placement.NEXT)
            continue
        if kind == "stale":
            stale += 1
            if stale >= stale_limit:
                raised = InstanceChanged
                break
        else:
            aborted += 1
            if aborted >= aborted_limit:
                raised = TransientStorageError
                break
        expected.append(Placement.ALONE if alone else Placement.QUEUED)

    async def go() -> None:
        if raised is None:
            assert await run.run(script, name="t") == "ok"
        else:
            with pytest.raises(raised):
                await run.run(script, name="t")

    asyncio.run(go())
    assert script.placements == expected


async def test_parallel_branches_through_the_batcher_each_land_once() -> None:
    """The policy and the batcher together, the way job events use them: one write per
    instance per batch, a second event of an instance sent after the batch. Every event gets
    through exactly once, in as many batches as the busiest instance has events."""
    written: list[tuple[str, int]] = []
    batches: list[int] = []

    async def write(batch: list[Pending[tuple[str, int], None]]) -> None:
        batches.append(len(batch))
        await asyncio.sleep(0.001)  # the database
        seen: set[str] = set()
        later = []
        for pending in batch:
            instance, _ = pending.item
            if instance in seen:
                later.append(pending)
                continue
            seen.add(instance)
            written.append(pending.item)
            pending.done(None)
        for pending in later:
            pending.failed(RunAfterBatch())

    batcher: Batcher[tuple[str, int], None] = Batcher(write, name="t", max_size=64, runners=1)
    run, sleeps = policy()
    events = [(instance, n) for instance in "abc" for n in range(10)]
    await asyncio.gather(
        *(run.run(lambda e=e: batcher.submit(e, retry.placement()), name="t") for e in events)  # type: ignore[misc]
    )
    assert sorted(written) == sorted(events)
    assert len(batches) == 10 and batches[0] == 30
    assert sleeps.slept == []
