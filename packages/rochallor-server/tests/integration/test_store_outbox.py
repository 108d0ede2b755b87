"""The dispatch outbox on PostgreSQL: rows are written by the event's own apply statement (so
only with a write that applies), and the relay's batch/publish statements."""

from __future__ import annotations

import attrs

from rochallor_server.engine.commands import EnqueueDispatch, InsertJob, SaveInstance
from rochallor_server.store.postgres import PostgresStore

from .records import make_job
from .test_store import apply, fetch_row, pool, seed, store  # noqa: F401 (fixtures)


def _dispatch(
    job_id: str, instance_id: str, outbox_id: str, job_type: str = "charge"
) -> EnqueueDispatch:
    return EnqueueDispatch(
        id=outbox_id,
        job_id=job_id,
        instance_id=instance_id,
        job_type=job_type,
        payload=bytes(range(256)),
    )


async def _outbox(target: PostgresStore) -> list[tuple[str, str, bytes]]:
    async with target.transaction() as tx:
        rows = await tx._conn.fetch(
            "SELECT id, job_id, payload FROM dispatch_outbox ORDER BY created_at, id"
        )
    return [(r["id"], r["job_id"], bytes(r["payload"])) for r in rows]


async def test_the_outbox_row_is_written_only_when_its_event_applies(
    store: PostgresStore,  # noqa: F811
) -> None:
    instance, execution, _ = await seed(store)
    fresh = make_job(execution)
    # the event read revision 0: it applies, with its job and its outbox row
    await apply(
        store,
        SaveInstance(instance=instance),
        InsertJob(job=fresh),
        _dispatch(fresh.id, instance.id, "o1"),
    )
    assert await _outbox(store) == [("o1", fresh.id, bytes(range(256)))]

    # a stale event (revision 0 again): nothing of it is written, no outbox row either
    stale = make_job(execution)
    async with store.transaction() as tx:
        [applied] = await tx.apply_events(
            [
                [
                    SaveInstance(instance=instance),
                    InsertJob(job=stale),
                    _dispatch(stale.id, instance.id, "o2"),
                ]
            ],
            audit=True,
        )
    assert applied is False
    assert [row[0] for row in await _outbox(store)] == ["o1"]

    moved_on = attrs.evolve(instance, revision=1)
    await apply(store, SaveInstance(instance=moved_on), _dispatch(fresh.id, instance.id, "o3"))
    assert [row[0] for row in await _outbox(store)] == ["o1", "o3"]


async def test_relay_batches_skip_held_job_types_and_what_queues_behind_them(
    store: PostgresStore,  # noqa: F811
) -> None:
    first, _, (held_job, other_job) = await seed(store, jobs=2)
    second, _, (free_job,) = await seed(store, jobs=1)
    await apply(store, _dispatch(held_job.id, first.id, "o1", job_type="missing"))
    await apply(store, _dispatch(other_job.id, first.id, "o2"))  # same instance, queued behind
    await apply(store, _dispatch(free_job.id, second.id, "o3"))

    lead = await store.lead_outbox(42)
    assert lead is not None
    assert await store.lead_outbox(42) is None, "one leader"
    try:
        async with lead.batch() as batch:
            rows = await batch.rows(held_job_types=["missing"], limit=10)
            assert [r.id for r in rows] == ["o3"]
            await batch.published(rows, audit=True)
        async with lead.batch() as batch:
            assert [r.id for r in await batch.rows(held_job_types=[], limit=1)] == ["o1"]
        backlog, oldest = await lead.backlog()
        assert backlog == 2 and oldest is not None
    finally:
        await lead.release()
    audit = await fetch_row(
        store,
        "SELECT actor, kind, instance_id, detail FROM audit_log WHERE kind = $1",
        "DISPATCHED_VIA_BROKER",
    )
    assert audit is not None
    assert tuple(audit) == (
        "dispatch-relay",
        "DISPATCHED_VIA_BROKER",
        second.id,
        {"job_id": free_job.id},
    )
    relock = await store.lead_outbox(42)
    assert relock is not None, "released"
    await relock.release()
