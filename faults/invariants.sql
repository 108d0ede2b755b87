-- The fault suite's invariant checker: each check is a query returning the rows that violate
-- it (none when the invariant holds). Run against the engine's database once the scenario's
-- instances have settled. Each block: `-- check: <name>`, a description line, the query.

-- check: instance_status_agrees_with_open_steps
-- An unfinished instance has a running step execution; a finished one has none.
SELECT i.id, i.status, count(e.id) AS running_steps
FROM workflow_instance i
LEFT JOIN step_execution e ON e.instance_id = i.id AND e.status = 'RUNNING'
GROUP BY i.id, i.status
HAVING (i.status IN ('ACTIVE', 'WAITING') AND count(e.id) = 0)
    OR (i.status NOT IN ('ACTIVE', 'WAITING') AND count(e.id) > 0);

-- check: no_job_locked_past_its_lease
-- A lease that ended is reclaimed by the lease sweeper within a few of its intervals.
SELECT id, instance_id, worker_id, lock_expires_at
FROM job
WHERE status = 'LOCKED' AND lock_expires_at < now() - interval '10 seconds';

-- check: no_open_work_of_a_finished_instance
-- A finished instance has no open job, open user task or pending timer.
SELECT 'job' AS kind, j.id, i.id AS instance_id, i.status
FROM job j JOIN workflow_instance i ON i.id = j.instance_id
WHERE i.status NOT IN ('ACTIVE', 'WAITING') AND j.status IN ('UNLOCKED', 'LOCKED')
UNION ALL
SELECT 'user_task', t.id, i.id, i.status
FROM user_task t JOIN workflow_instance i ON i.id = t.instance_id
WHERE i.status NOT IN ('ACTIVE', 'WAITING') AND t.status = 'OPEN'
UNION ALL
SELECT 'timer', b.id, i.id, i.status
FROM boundary_event_schedule b JOIN workflow_instance i ON i.id = b.instance_id
WHERE i.status NOT IN ('ACTIVE', 'WAITING') AND b.status = 'PENDING';

-- check: one_step_execution_per_instance_step_attempt
-- A step is entered once per attempt: a join or a timer that fired twice shows here.
SELECT instance_id, step_id, attempt_number, count(*) AS executions
FROM step_execution
GROUP BY instance_id, step_id, attempt_number
HAVING count(*) > 1;

-- check: one_terminal_audit_event_per_instance
-- An instance ends once: one terminal audit entry (completed, failed or cancelled).
SELECT instance_id, array_agg(kind ORDER BY id) AS kinds
FROM audit_log
WHERE kind IN ('instance-completed', 'instance-failed', 'instance-cancelled')
GROUP BY instance_id
HAVING count(*) > 1;

-- check: variables_of_every_completed_job_present
-- Every variable a completed job's worker sent is in its completed instance's variables.
SELECT j.id AS job_id, j.instance_id, e.output_snapshot
FROM job j
JOIN step_execution e ON e.id = j.step_execution_id
JOIN workflow_instance i ON i.id = j.instance_id
WHERE j.status = 'COMPLETED' AND e.status = 'COMPLETED' AND i.status = 'COMPLETED'
  AND jsonb_typeof(e.output_snapshot) = 'object'
  AND NOT i.variables ?& ARRAY(SELECT jsonb_object_keys(e.output_snapshot));
