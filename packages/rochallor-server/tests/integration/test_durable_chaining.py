"""Chaining is durable: the chained start is recorded in the parent's final transaction and
made exactly once, by this engine right after the commit or by the chain sweeper after a crash,
also when replicas race for it (real PostgreSQL)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from rochallor_server.app import Server
from rochallor_server.engine.commands import ChainNext
from rochallor_server.service.workflow_service import WorkflowService

from .client import Api
from .services import scalar
from .test_scenarios import END, task, wf


async def test_a_chain_the_engine_did_not_make_after_commit_is_made_by_the_sweeper(
    api: Api, server: Server, pg_dsn: str
) -> None:
    """The engine dies between the parent's commit and its after-commit work: the request is
    in the database, and the chain sweeper (of the restarted engine) makes it."""
    await api.upload(wf("dc-b", task("b", "dc-b", "end"), END))
    await api.upload(
        wf("dc-a", END, autoStartNextWorkflow=True, nextWorkflowId="dc-b"),
    )
    assert server.service is not None
    kicks: list[int] = []
    server.service._kick_chains = lambda: kicks.append(1)  # type: ignore[method-assign]
    sweeper = next(s for s in server.sweepers if s.name == "chain-sweeper")
    await sweeper.stop()  # "crashed": nobody makes the chain for now

    parent = await api.start("dc-a", business_key="BK-1")
    assert (await api.instance(parent["id"]))["status"] == "COMPLETED"
    assert kicks == [1]
    assert await scalar(pg_dsn, "SELECT count(*) FROM pending_chain") == 1
    assert (
        await scalar(pg_dsn, "SELECT count(*) FROM workflow_instance WHERE definition_id = 'dc-b'")
        == 0
    )

    sweeper.start()  # "restarted"
    [child] = await api.wait_for_instances("dc-b", 1)
    assert child["businessKey"] == "BK-1"
    assert await scalar(pg_dsn, "SELECT count(*) FROM pending_chain") == 0
    await asyncio.sleep(0.5)  # a few more sweeps: still one child
    assert len(await api.wait_for_instances("dc-b", 1)) == 1


async def test_replicas_racing_for_the_requests_start_each_child_once(
    replicas: list[WorkflowService], pg_dsn: str
) -> None:
    first = replicas[0]
    await first.upload_definition(wf("dc-child", task("c", "dc-c", "end"), END))
    async with first.store.transaction() as tx:  # 30 parents' final writes asked for a chain
        await tx.apply_events(
            [
                [
                    ChainNext(
                        parent_instance_id=f"parent-{n}",
                        definition_id="dc-child",
                        variables={"n": n},
                        business_key=None,
                    )
                ]
                for n in range(30)
            ],
            audit=True,
        )
    made = await asyncio.gather(*(engine.run_pending_chains() for engine in replicas))
    assert sum(made) == 30
    assert await scalar(pg_dsn, "SELECT count(*) FROM pending_chain") == 0
    children = await scalar(pg_dsn, "SELECT count(DISTINCT variables->>'n') FROM workflow_instance")
    assert children == 30
    assert await scalar(pg_dsn, "SELECT count(*) FROM workflow_instance") == 30
    assert (
        await scalar(pg_dsn, "SELECT count(*) FROM audit_log WHERE kind = 'instance-chained'") == 30
    )


async def test_a_chain_to_a_missing_definition_is_audited_once_and_forgotten(
    replicas: list[WorkflowService], pg_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    engine = replicas[0]
    async with engine.store.transaction() as tx:
        chain = ChainNext(
            parent_instance_id="p", definition_id="nope", variables={}, business_key=None
        )
        await tx.apply_events([[chain]], audit=True)
    with caplog.at_level(logging.WARNING):
        assert await engine.run_pending_chains() == 1
    assert "chaining p -> nope failed" in caplog.text
    assert await engine.run_pending_chains() == 0
    failed = "SELECT count(*) FROM audit_log WHERE kind = 'instance-chain-failed'"
    assert await scalar(pg_dsn, failed) == 1


async def test_a_failing_background_task_is_logged(
    replicas: list[WorkflowService], caplog: pytest.LogCaptureFixture
) -> None:
    async def broken() -> None:
        raise RuntimeError("boom")

    with caplog.at_level(logging.ERROR):
        replicas[0]._spawn(broken(), name="broken-task")
        await replicas[0].drain()
    assert "background task broken-task failed" in caplog.text
    assert "RuntimeError: boom" in caplog.text
