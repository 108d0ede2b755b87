"""How one handler call becomes an outcome; the polling and the Kafka worker both use this."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from rochallor_sdk import HandlerResultError, NonRetryableError
from rochallor_sdk._outcome import Cancelled, Completed, Failed, HandlerCall, Outcome

log = logging.getLogger("test-outcome")


async def outcome_of(handler: Any) -> Outcome:
    with ThreadPoolExecutor(max_workers=1) as executor:
        return await HandlerCall(handler, {"n": 2}, executor, log=log, job_id="j").outcome()


def sync_double(ctx: dict[str, Any]) -> dict[str, Any]:
    return {"n": ctx["n"] * 2, "pair": (1, 2)}


async def async_double(ctx: dict[str, Any]) -> dict[str, Any]:
    await asyncio.sleep(0)
    return {"n": ctx["n"] * 2, "pair": (1, 2)}


def sync_returning_a_coroutine(ctx: dict[str, Any]) -> Any:
    return async_double(ctx)


@pytest.mark.parametrize("handler", [sync_double, async_double, sync_returning_a_coroutine])
async def test_a_returned_mapping_completes_with_its_json_form(handler: Any) -> None:
    assert await outcome_of(handler) == Completed(variables={"n": 4, "pair": [1, 2]})


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (RuntimeError("gateway timeout"), Failed(message="gateway timeout", retryable=True)),
        (KeyError(), Failed(message="KeyError", retryable=True)),
        (NonRetryableError("card declined"), Failed(message="card declined", retryable=False)),
        # the SDK's "cannot be sent" error is terminal whoever raises it
        (HandlerResultError("no"), Failed(message="no", retryable=False)),
    ],
    ids=["plain", "empty-message", "non-retryable", "result-error"],
)
@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_an_exception_fails_retryably_unless_it_says_otherwise(
    kind: str, raised: Exception, expected: Failed
) -> None:
    def sync_raise(ctx: dict[str, Any]) -> None:
        raise raised

    async def async_raise(ctx: dict[str, Any]) -> None:
        raise raised

    assert await outcome_of(sync_raise if kind == "sync" else async_raise) == expected


async def test_an_unsendable_result_is_a_terminal_failure() -> None:
    outcome = await outcome_of(lambda ctx: {"when": object()})
    assert isinstance(outcome, Failed)
    assert not outcome.retryable
    assert "not JSON-serialisable" in outcome.message


async def test_a_cancellation_asked_for_is_an_outcome_any_other_propagates() -> None:
    started = asyncio.Event()

    async def slow(ctx: dict[str, Any]) -> None:
        started.set()
        await asyncio.sleep(60)

    asked = HandlerCall(slow, {}, None, log=log, job_id="j")
    waiting = asyncio.ensure_future(asked.outcome())
    await started.wait()
    asked.cancel("lease lost: gone")
    assert await waiting == Cancelled(reason="lease lost: gone")

    started.clear()
    unasked = HandlerCall(slow, {}, None, log=log, job_id="j")
    waiting = asyncio.ensure_future(unasked.outcome())
    await started.wait()
    waiting.cancel()  # the worker's own task is cancelled: not an outcome
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert unasked.future.cancelled()
