"""The invariant checker itself: each check finds its violation in a database seeded with it,
and nothing in a healthy one (fast; no engine process)."""

from __future__ import annotations

import asyncio

import asyncpg
import harness as h

HEALTHY = """
INSERT INTO workflow_instance (id, definition_id, definition_version, status, variables)
VALUES ('ok', 'd', 1, 'COMPLETED', '{"v_a": "j-ok"}'),
       ('running', 'd', 1, 'ACTIVE', '{}');
INSERT INTO step_execution (id, instance_id, step_id, step_type, status, output_snapshot)
VALUES ('e-ok', 'ok', 'a', 'SERVICE_TASK', 'COMPLETED', '{"v_a": "j-ok"}'),
       ('e-run', 'running', 'a', 'SERVICE_TASK', 'RUNNING', NULL);
INSERT INTO job (id, instance_id, step_execution_id, step_id, job_type, status, worker_id,
                 lock_expires_at)
VALUES ('j-ok', 'ok', 'e-ok', 'a', 't', 'COMPLETED', 'w', NULL),
       ('j-run', 'running', 'e-run', 'a', 't', 'LOCKED', 'w', now() + interval '30 seconds');
INSERT INTO audit_log (actor, kind, instance_id) VALUES ('engine', 'instance-completed', 'ok');
"""

BROKEN = {
    "instance_status_agrees_with_open_steps": """
        INSERT INTO workflow_instance (id, definition_id, definition_version, status)
        VALUES ('idle', 'd', 1, 'ACTIVE');
    """,
    "no_job_locked_past_its_lease": """
        UPDATE job SET lock_expires_at = now() - interval '1 minute' WHERE id = 'j-run';
    """,
    "no_open_work_of_a_finished_instance": """
        INSERT INTO job (id, instance_id, step_execution_id, step_id, job_type, status)
        VALUES ('j-open', 'ok', 'e-ok', 'a', 't', 'UNLOCKED');
    """,
    "one_step_execution_per_instance_step_attempt": """
        INSERT INTO step_execution (id, instance_id, step_id, step_type, status)
        VALUES ('e-twice', 'ok', 'a', 'SERVICE_TASK', 'COMPLETED');
    """,
    "one_terminal_audit_event_per_instance": """
        INSERT INTO audit_log (actor, kind, instance_id)
        VALUES ('engine', 'instance-failed', 'ok');
    """,
    "variables_of_every_completed_job_present": """
        UPDATE workflow_instance SET variables = '{}' WHERE id = 'ok';
    """,
}


async def _violations(dsn: str, seed: str) -> dict[str, int]:
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await conn.execute(HEALTHY + seed)
            found = {name: len(await conn.fetch(query)) for name, query in h.invariant_checks()}
            raise _Rollback(found)
    except _Rollback as done:
        return done.found
    finally:
        await conn.close()


class _Rollback(Exception):
    def __init__(self, found: dict[str, int]) -> None:
        self.found = found


def test_every_check_has_a_seeded_violation() -> None:
    assert sorted(name for name, _ in h.invariant_checks()) == sorted(BROKEN)


def test_a_healthy_database_passes_and_each_violation_is_found(pg_dsn: str) -> None:
    assert asyncio.run(_violations(pg_dsn, "")) == dict.fromkeys(BROKEN, 0)
    for name, seed in BROKEN.items():
        found = asyncio.run(_violations(pg_dsn, seed))
        assert found[name] >= 1, name
        assert sum(found.values()) == found[name], (name, found)  # only that check
