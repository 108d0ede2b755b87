"""Events of one instance racing each other on PostgreSQL, through the service.

Every event reads its instance, decides, and writes only if the instance is still at the
revision it read; a retry's write applies only to the job as its event read it. Replicas
(several :class:`WorkflowService` over one database, each with its own batches) race here
for real, and each test checks the stored state afterwards: one terminal status per instance,
every job ended once, no open work left behind, nothing lost.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

import pytest

from rochallor_server.engine.model import Instance, InstanceStatus, Job
from rochallor_server.errors import Conflict
from rochallor_server.service.workflow_service import WorkflowService
from rochallor_server.store.postgres import PostgresStore

from .services import audit_kinds, check_invariants, rows, value

END = {"id": "end", "name": "end", "type": "END"}


def task(step_id: str, next_step: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": step_id,
        "name": step_id,
        "type": "SERVICE_TASK",
        "jobType": step_id,
        "nextStep": next_step,
        **extra,
    }


def fan_in(definition_id: str, branches: list[str], **extra: Any) -> dict[str, Any]:
    """A parallel gateway into one SERVICE_TASK per branch (job type = branch id), joined."""
    return {
        "id": definition_id,
        "name": definition_id,
        "steps": [
            {
                "id": "fork",
                "name": "fork",
                "type": "PARALLEL_GATEWAY",
                "parallelNextSteps": branches,
                "joinStep": "join",
            },
            *(task(branch, "join", **extra) for branch in branches),
            {"id": "join", "name": "join", "type": "JOIN_GATEWAY", "nextStep": "end"},
            END,
        ],
    }


async def start(service: WorkflowService, definition_id: str, count: int) -> list[Instance]:
    return [
        await service.start_instance(
            definition_id=definition_id, version=None, variables=None, business_key=None
        )
        for _ in range(count)
    ]


async def claim(service: WorkflowService, job_types: list[str], count: int) -> list[Job]:
    jobs = await service.poll_jobs(
        worker_id="w1", job_types=job_types, max_jobs=100, wait_seconds=0, encode=lambda j: j
    )
    assert len(jobs) == count
    return jobs


async def join_executions(dsn: str, instance_id: str) -> int:
    found = await rows(
        dsn,
        "SELECT count(*) AS n FROM step_execution WHERE instance_id = $1 AND step_id = 'join'",
        instance_id,
    )
    return int(found[0]["n"])


async def test_branches_completed_at_once_on_three_replicas_join_once(
    replicas: list[WorkflowService], pg_dsn: str
) -> None:
    """Forty completions of four instances' branches, spread over three replicas, all at
    once: every completion is applied once, no branch's variables are lost, each join fires
    once and each instance completes."""
    branches = [f"b{n}" for n in range(10)]
    await replicas[0].upload_definition(fan_in("R::fan", branches))
    instances = await start(replicas[0], "R::fan", 4)
    jobs = await claim(replicas[1], branches, 40)

    await asyncio.gather(
        *(
            replicas[n % 3].complete_job(job.id, worker_id="w1", variables={job.step_id: n})
            for n, job in enumerate(jobs)
        )
    )

    statuses = await check_invariants(pg_dsn, [i.id for i in instances])
    assert set(statuses.values()) == {"COMPLETED"}
    for instance in instances:
        final = await replicas[2].get_instance(instance.id)
        mine = {j.step_id: n for n, j in enumerate(jobs) if j.instance_id == instance.id}
        assert final.variables == mine  # every branch's write survived
        assert await join_executions(pg_dsn, instance.id) == 1
    assert sum(value(r.metrics.instances_completed.labels("completed")) for r in replicas) == 4


async def test_a_signal_racing_a_cancel_one_of_them_wins(
    replicas: list[WorkflowService], pg_dsn: str
) -> None:
    """The other one is refused (409): the instance ends once, completed or cancelled."""
    signal, cancel = replicas[0], replicas[1]
    await signal.upload_definition(
        {
            "id": "R::wait",
            "name": "wait",
            "steps": [{"id": "w", "name": "w", "type": "WAIT", "nextStep": "end"}, END],
        }
    )
    instances = await start(signal, "R::wait", 10)

    async def race(instance_id: str) -> tuple[Any, Any]:
        signalled, cancelled = await asyncio.gather(
            signal.signal(instance_id, "w", {"signalled": True}),
            cancel.cancel_instance(instance_id, "race"),
            return_exceptions=True,
        )
        return signalled, cancelled

    results = await asyncio.gather(*(race(i.id) for i in instances))

    statuses = await check_invariants(pg_dsn, [i.id for i in instances])
    for instance, (signalled, cancelled) in zip(instances, results, strict=True):
        kinds = await audit_kinds(pg_dsn, instance.id)
        if statuses[instance.id] == "COMPLETED":
            assert signalled is None and isinstance(cancelled, Conflict), (signalled, cancelled)
            assert "instance-cancelled" not in kinds
        else:
            assert statuses[instance.id] == "CANCELLED"
            assert isinstance(signalled, Conflict), signalled
            assert isinstance(cancelled, Instance)
            assert cancelled.status is InstanceStatus.CANCELLED
            assert "wait-signalled" not in kinds


async def test_a_retry_racing_a_completion_of_the_same_job_never_reopens_it(
    replicas: list[WorkflowService], pg_dsn: str
) -> None:
    """A worker's retryable failure and a completion of the same job (a duplicate report,
    another replica) race: the completion always takes effect, the retry at most once and
    only before it, and a completed job never becomes claimable again."""
    fail, complete = replicas[0], replicas[1]
    await fail.upload_definition(
        {"id": "R::one", "name": "one", "steps": [task("a", "end", retryCount=2), END]}
    )
    # both replicas have compiled the definition: neither is slowed down by it in the race
    instances = [*await start(fail, "R::one", 5), *await start(complete, "R::one", 5)]
    jobs = await claim(fail, ["a"], 10)

    async def after(delay: float, call: Awaitable[None]) -> None:
        await asyncio.sleep(delay)
        await call

    # each pair in another interleaving: either may be read, or written, first
    await asyncio.gather(
        *(
            call
            for n, job in enumerate(jobs)
            for call in (
                after(
                    0.002 * (n % 5),
                    fail.fail_job(job.id, worker_id="w1", error_message="flaky", retryable=True),
                ),
                after(
                    0.002 * (4 - n % 5),
                    complete.complete_job(job.id, worker_id="w1", variables={"done": True}),
                ),
            )
        )
    )

    statuses = await check_invariants(pg_dsn, [i.id for i in instances])
    assert set(statuses.values()) == {"COMPLETED"}
    retried = 0
    for job in jobs:
        [row] = await rows(
            pg_dsn, "SELECT status, retries_remaining FROM job WHERE id = $1", job.id
        )
        kinds = await audit_kinds(pg_dsn, job.instance_id)
        assert row["status"] == "COMPLETED"
        assert kinds.count("job-completed") == 1
        assert kinds.count("job-retried") == 2 - row["retries_remaining"] <= 1
        retried += kinds.count("job-retried")
    assert value(fail.metrics.job_retries) == retried
    assert await claim(complete, ["a"], 0) == []


async def test_a_retry_decided_before_a_completion_commits_is_not_written_after_it(
    replicas: list[WorkflowService],
    pg_store: PostgresStore,
    pg_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The one interleaving of the race above that could reopen a job, made to happen: the
    retry reads the job LOCKED, the completion commits, then the retry writes. Its write
    applies nothing; decided again, the failure finds the job finished and changes nothing."""
    fail, complete = replicas[0], replicas[1]
    await fail.upload_definition(
        {"id": "R::one", "name": "one", "steps": [task("a", "end", retryCount=2), END]}
    )
    [instance] = await start(fail, "R::one", 1)
    [job] = await claim(fail, ["a"], 1)

    async with pg_store.session() as tx:
        session = type(tx)
    real_load = session.load_job_events
    reads = 0

    async def completion_commits_after_the_first_read(self: Any, job_ids: Any) -> Any:
        nonlocal reads
        reads += 1
        loaded = await real_load(self, job_ids)
        if reads == 1:  # the retry's read: the completion's whole event runs now
            await complete.complete_job(job.id, worker_id="w1", variables={"done": True})
        return loaded

    monkeypatch.setattr(session, "load_job_events", completion_commits_after_the_first_read)
    await fail.fail_job(job.id, worker_id="w1", error_message="flaky", retryable=True)

    assert reads == 3  # the retry, the completion, the retry decided again
    assert value(fail.metrics.instance_conflicts) == 1
    assert value(fail.metrics.job_retries) == 0
    [row] = await rows(pg_dsn, "SELECT status, retries_remaining FROM job WHERE id = $1", job.id)
    assert (row["status"], row["retries_remaining"]) == ("COMPLETED", 2)
    assert "job-retried" not in await audit_kinds(pg_dsn, instance.id)
    assert await check_invariants(pg_dsn, [instance.id]) == {instance.id: "COMPLETED"}
    assert await claim(complete, ["a"], 0) == []


async def test_a_retry_of_one_branch_racing_completions_of_the_others_loses_nothing(
    replicas: list[WorkflowService], pg_dsn: str
) -> None:
    """A retry writes the job only, completions write the instance: none of them undoes
    another, and the join waits for the retried branch."""
    await replicas[0].upload_definition(fan_in("R::mixed", ["a", "b", "c"], retryCount=1))
    instances = await start(replicas[0], "R::mixed", 5)
    jobs = await claim(replicas[0], ["a", "b", "c"], 15)

    await asyncio.gather(
        *(
            replicas[0].fail_job(job.id, worker_id="w1", error_message="again", retryable=True)
            if job.step_id == "a"
            else replicas[1 + n % 2].complete_job(
                job.id, worker_id="w1", variables={job.step_id: 1}
            )
            for n, job in enumerate(jobs)
        )
    )

    statuses = await check_invariants(pg_dsn, [i.id for i in instances])
    assert set(statuses.values()) == {"ACTIVE"}
    for instance in instances:
        waiting = await replicas[1].get_instance(instance.id)
        assert waiting.variables == {"b": 1, "c": 1}
        assert waiting.join_arrivals == {"join": 2}
    again = await claim(replicas[2], ["a"], 5)
    assert {j.retries_remaining for j in again} == {0}
    await asyncio.gather(
        *(replicas[n % 3].complete_job(j.id, worker_id="w1", variables={"a": 1}) for n, j in
          enumerate(again))
    )  # fmt: skip
    statuses = await check_invariants(pg_dsn, [i.id for i in instances])
    assert set(statuses.values()) == {"COMPLETED"}
    for instance in instances:
        assert await join_executions(pg_dsn, instance.id) == 1


async def test_a_cancel_racing_completions_on_other_replicas_ends_the_instance_once(
    replicas: list[WorkflowService], pg_dsn: str
) -> None:
    """Either the last completion ends the instance first (the cancel is refused), or the
    cancel does (the later completions change nothing); the work of each branch ends once."""
    await replicas[0].upload_definition(fan_in("R::cancel", ["a", "b", "c"]))
    instances = await start(replicas[0], "R::cancel", 8)
    jobs = await claim(replicas[0], ["a", "b", "c"], 24)
    by_instance = {i.id: [j for j in jobs if j.instance_id == i.id] for i in instances}

    async def race(instance_id: str) -> Any:
        *completed, cancelled = await asyncio.gather(
            *(
                replicas[1 + n % 2].complete_job(job.id, worker_id="w1", variables=None)
                for n, job in enumerate(by_instance[instance_id])
            ),
            replicas[0].cancel_instance(instance_id, "race"),
            return_exceptions=True,
        )
        assert completed == [None] * 3  # a completion never fails for the race
        return cancelled

    cancels = await asyncio.gather(*(race(i.id) for i in instances))

    statuses = await check_invariants(pg_dsn, [i.id for i in instances])
    for instance, cancelled in zip(instances, cancels, strict=True):
        found = await rows(pg_dsn, "SELECT status FROM job WHERE instance_id = $1", instance.id)
        job_statuses = sorted(r["status"] for r in found)
        if statuses[instance.id] == "COMPLETED":
            assert isinstance(cancelled, Conflict), cancelled
            assert job_statuses == ["COMPLETED"] * 3
            assert await join_executions(pg_dsn, instance.id) == 1
        else:
            assert statuses[instance.id] == "CANCELLED"
            assert isinstance(cancelled, Instance), cancelled
            assert set(job_statuses) <= {"COMPLETED", "CANCELLED"}
            assert "CANCELLED" in job_statuses  # the cancel ended a branch still open


async def test_two_consoles_retrying_one_failed_instance_resume_it_once(
    replicas: list[WorkflowService], pg_dsn: str
) -> None:
    await replicas[0].upload_definition(
        {"id": "R::fails", "name": "fails", "steps": [task("a", "end"), END]}
    )
    instances = await start(replicas[0], "R::fails", 6)
    for job in await claim(replicas[0], ["a"], 6):
        await replicas[0].fail_job(job.id, worker_id="w1", error_message="no", retryable=False)

    results = await asyncio.gather(
        *(
            replicas[n].retry_instance(instance.id, variables={"by": n})
            for instance in instances
            for n in (1, 2)
        ),
        return_exceptions=True,
    )

    statuses = await check_invariants(pg_dsn, [i.id for i in instances])
    assert set(statuses.values()) == {"ACTIVE"}
    for n, instance in enumerate(instances):
        first, second = results[2 * n : 2 * n + 2]
        winners = [r for r in (first, second) if isinstance(r, Instance)]
        assert len(winners) == 1, (first, second)
        assert any(isinstance(r, Conflict) for r in (first, second))
        kinds = await audit_kinds(pg_dsn, instance.id)
        assert kinds.count("instance-retried") == 1
        stored = await replicas[0].get_instance(instance.id)
        assert stored.variables == winners[0].variables
    assert len(await claim(replicas[0], ["a"], 6)) == 6  # one new job per instance
