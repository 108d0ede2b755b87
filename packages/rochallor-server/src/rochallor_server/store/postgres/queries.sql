-- Every statement of the PostgreSQL store. Each block starts with a `-- name --` header, then
-- a one-line description, then the positional parameters in order (`-- (no parameters)` when
-- there are none). queries.py parses this file at import and checks the parameter lists.
-- Column lists are spelled out (no `*`) so that adding a column never changes the result
-- shape of a prepared statement.

-- lock_definition_id --
-- Serialise version allocation for one definition id until the transaction ends.
-- $1 definition_id text
SELECT pg_advisory_xact_lock(1919902574, hashtext($1));

-- insert_definition --
-- Store the next version (max + 1) of a definition; call lock_definition_id first.
-- $1 id text, $2 name text, $3 description text, $4 raw_json text, $5 parsed_steps jsonb, $6 auto_start_next_workflow_id text, $7 uploaded_at timestamptz
INSERT INTO workflow_definition
    (id, version, name, description, raw_json, parsed_steps, auto_start_next_workflow_id,
     uploaded_at)
SELECT $1, coalesce(max(version), 0) + 1, $2, $3, $4, $5, $6, $7
FROM workflow_definition
WHERE id = $1
RETURNING id, version, name, uploaded_at, raw_json;

-- latest_definition --
-- The highest version of a definition.
-- $1 id text
SELECT id, version, name, uploaded_at, raw_json
FROM workflow_definition
WHERE id = $1
ORDER BY version DESC
LIMIT 1;

-- latest_definition_versions --
-- The highest version number of each of some definitions (starting instances needs nothing else).
-- $1 ids text[]
SELECT d.id, max(d.version) AS version
FROM unnest($1::text[]) AS wanted(id)
JOIN workflow_definition d ON d.id = wanted.id
GROUP BY d.id;

-- definition --
-- One version of a definition.
-- $1 id text, $2 version int
SELECT id, version, name, uploaded_at, raw_json
FROM workflow_definition
WHERE id = $1 AND version = $2;

-- list_definitions --
-- A page of latest versions, one per id, ordered by id; $1 is a LIKE pattern or NULL for all.
-- $1 pattern text, $2 offset int, $3 limit int
WITH latest AS (
    SELECT DISTINCT ON (id) id, version, name, uploaded_at, raw_json
    FROM workflow_definition
    ORDER BY id, version DESC
)
SELECT id, version, name, uploaded_at, raw_json
FROM latest
WHERE $1::text IS NULL OR id ILIKE $1 ESCAPE '\' OR name ILIKE $1 ESCAPE '\'
ORDER BY id COLLATE "C"  -- code-point order, the same on every server whatever its locale
OFFSET $2
LIMIT $3;

-- count_definitions --
-- How many definition ids list_definitions matches in all.
-- $1 pattern text
WITH latest AS (
    SELECT DISTINCT ON (id) id, name
    FROM workflow_definition
    ORDER BY id, version DESC
)
SELECT count(*)
FROM latest
WHERE $1::text IS NULL OR id ILIKE $1 ESCAPE '\' OR name ILIKE $1 ESCAPE '\';

-- get_instance --
-- One instance.
-- $1 id text
SELECT id, definition_id, definition_version, status, current_step_ids, variables,
       join_arrivals, step_attempts, started_at, completed_at, failure_reason, business_key,
       revision
FROM workflow_instance
WHERE id = $1;

-- load_instance --
-- An instance with its revision and its RUNNING step executions (in entry order), unlocked: the event's write checks the revision.
-- $1 id text
SELECT i.id, i.definition_id, i.definition_version, i.status, i.current_step_ids, i.variables,
       i.join_arrivals, i.step_attempts, i.started_at, i.completed_at, i.failure_reason,
       i.business_key, i.revision,
       -- one statement, one snapshot: the row and its running executions agree
       ARRAY(
           SELECT ROW(e.id, e.instance_id, e.step_id, e.step_type, e.attempt_number, e.status,
                      e.started_at, e.ended_at, e.failure_reason)
           FROM step_execution e
           WHERE e.instance_id = i.id AND e.status = 'RUNNING'
           ORDER BY e.started_at, e.id
       ) AS running
FROM workflow_instance i
WHERE i.id = $1;

-- list_instances --
-- A page of instances, newest first; each NULL filter matches everything.
-- $1 definition_id text, $2 status text, $3 business_key text, $4 offset int, $5 limit int
SELECT id, definition_id, definition_version, status, current_step_ids, variables,
       join_arrivals, step_attempts, started_at, completed_at, failure_reason, business_key,
       revision
FROM workflow_instance
WHERE ($1::text IS NULL OR definition_id = $1)
  AND ($2::text IS NULL OR status = $2)
  AND ($3::text IS NULL OR business_key = $3)
ORDER BY started_at DESC, id DESC
OFFSET $4
LIMIT $5;

-- count_instances --
-- How many instances list_instances matches in all.
-- $1 definition_id text, $2 status text, $3 business_key text
SELECT count(*)
FROM workflow_instance
WHERE ($1::text IS NULL OR definition_id = $1)
  AND ($2::text IS NULL OR status = $2)
  AND ($3::text IS NULL OR business_key = $3);

-- history --
-- Every step execution of an instance, in the order they were entered.
-- $1 instance_id text
SELECT id, instance_id, step_id, step_type, attempt_number, status, started_at, ended_at,
       failure_reason
FROM step_execution
WHERE instance_id = $1
ORDER BY started_at, id;

-- get_job --
-- One job.
-- $1 id text
SELECT id, instance_id, step_execution_id, step_id, job_type, status, worker_id, locked_at,
       lock_expires_at, retries_remaining, payload, created_at
FROM job
WHERE id = $1;

-- load_job_events --
-- Jobs (columns prefixed job_), each with its instance as load_instance has it (NULLs if the instance is missing).
-- $1 job_ids text[]
SELECT j.id AS job_id, j.instance_id AS job_instance_id, j.step_execution_id AS job_step_execution_id,
       j.step_id AS job_step_id, j.job_type AS job_job_type, j.status AS job_status,
       j.worker_id AS job_worker_id, j.locked_at AS job_locked_at,
       j.lock_expires_at AS job_lock_expires_at, j.retries_remaining AS job_retries_remaining,
       j.payload AS job_payload, j.created_at AS job_created_at,
       i.id, i.definition_id, i.definition_version, i.status, i.current_step_ids, i.variables,
       i.join_arrivals, i.step_attempts, i.started_at, i.completed_at, i.failure_reason,
       i.business_key, i.revision,
       -- one statement, one snapshot: the row and its running executions agree
       ARRAY(
           SELECT ROW(e.id, e.instance_id, e.step_id, e.step_type, e.attempt_number, e.status,
                      e.started_at, e.ended_at, e.failure_reason)
           FROM step_execution e
           WHERE e.instance_id = i.id AND e.status = 'RUNNING'
           ORDER BY e.started_at, e.id
       ) AS running
FROM job j
LEFT JOIN workflow_instance i ON i.id = j.instance_id
WHERE j.id = ANY($1::text[]);

-- claim_jobs --
-- Lock up to $5 claimable jobs of the given types for one worker (RETURNING order is unspecified).
-- $1 worker_id text, $2 locked_at timestamptz, $3 lock_expires_at timestamptz, $4 job_types text[], $5 limit int
-- Per type, the oldest $5 claimable jobs are read in index order (ix_job_claimable), so a claim
-- costs the same however deep the queue is; the oldest $5 of those are taken. MATERIALIZED:
-- the locking subquery runs exactly once, so a rescan can never claim more than $5 rows.
WITH candidates AS MATERIALIZED (
    SELECT c.id
    FROM unnest($4::text[]) AS t(job_type)
    CROSS JOIN LATERAL (
        SELECT j.id, j.created_at
        FROM job j
        WHERE j.status = 'UNLOCKED' AND j.job_type = t.job_type
        ORDER BY j.created_at, j.id
        LIMIT $5
        FOR UPDATE SKIP LOCKED
    ) AS c
    ORDER BY c.created_at, c.id
    LIMIT $5
)
UPDATE job
SET status = 'LOCKED', worker_id = $1, locked_at = $2, lock_expires_at = $3
FROM candidates
WHERE job.id = candidates.id
RETURNING job.id, job.instance_id, job.step_execution_id, job.step_id, job.job_type, job.status,
          job.worker_id, job.locked_at, job.lock_expires_at, job.retries_remaining, job.payload,
          job.created_at;

-- release_jobs --
-- Jobs a poll claimed but could not hand out, claimable again (only while still its claim).
-- $1 ids text[], $2 worker_id text
UPDATE job
SET status = 'UNLOCKED', worker_id = NULL, locked_at = NULL, lock_expires_at = NULL
WHERE id = ANY($1::text[]) AND status = 'LOCKED' AND worker_id = $2;

-- extend_lease --
-- Push a lease forward, only for the worker holding it.
-- $1 id text, $2 worker_id text, $3 lock_expires_at timestamptz
UPDATE job
SET lock_expires_at = $3
WHERE id = $1 AND status = 'LOCKED' AND worker_id = $2
RETURNING lock_expires_at;

-- reclaim_expired_leases --
-- Unlock up to $2 jobs whose lease expired before $1 (retries untouched); returns them as they were (LOCKED, with the expired lease).
-- $1 now timestamptz, $2 limit int
WITH expired AS MATERIALIZED (
    SELECT id, instance_id, step_execution_id, step_id, job_type, status, worker_id, locked_at,
           lock_expires_at, retries_remaining, payload, created_at
    FROM job
    WHERE status = 'LOCKED' AND lock_expires_at < $1
    ORDER BY lock_expires_at, id
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
UPDATE job
SET status = 'UNLOCKED', worker_id = NULL, locked_at = NULL, lock_expires_at = NULL
FROM expired
WHERE job.id = expired.id
RETURNING expired.id, expired.instance_id, expired.step_execution_id, expired.step_id,
          expired.job_type, expired.status, expired.worker_id, expired.locked_at,
          expired.lock_expires_at, expired.retries_remaining, expired.payload, expired.created_at;

-- notify_job_types --
-- Wake the pollers of each job type (sent at commit; duplicates are folded by PostgreSQL).
-- $1 job_types text[]
SELECT pg_notify('rochallor_jobs', job_type) FROM unnest($1::text[]) AS job_type;

-- open_user_task --
-- The OPEN user task of a step of an instance.
-- $1 instance_id text, $2 step_id text
SELECT id, instance_id, step_execution_id, step_id, status, payload, created_at
FROM user_task
WHERE instance_id = $1 AND step_id = $2 AND status = 'OPEN'
ORDER BY created_at DESC, id DESC
LIMIT 1;

-- get_timer --
-- One boundary timer.
-- $1 id text
SELECT id, instance_id, step_execution_id, target_step_id, fire_at, interrupting, status
FROM boundary_event_schedule
WHERE id = $1;

-- due_timers --
-- Up to $2 pending timers due at $1, earliest first (not locked: each is re-checked under lock).
-- $1 now timestamptz, $2 limit int
SELECT id, instance_id, step_execution_id, target_step_id, fire_at, interrupting, status
FROM boundary_event_schedule
WHERE status = 'PENDING' AND fire_at <= $1
ORDER BY fire_at, id
LIMIT $2;

-- apply_saved --
-- Fragment of the apply statement: the instances saved, each only at the revision its event read (bumped).
-- $1 document jsonb
saved AS (
    UPDATE workflow_instance AS i
    SET status = x.status, current_step_ids = x.current_step_ids, variables = x.variables,
        join_arrivals = x.join_arrivals, step_attempts = x.step_attempts,
        completed_at = x.completed_at, failure_reason = x.failure_reason,
        revision = i.revision + 1
    FROM jsonb_to_recordset($1::jsonb -> 'save') AS x(
        id text, revision bigint, status text, current_step_ids text[], variables jsonb,
        join_arrivals jsonb, step_attempts jsonb, completed_at timestamptz, failure_reason text)
    WHERE i.id = x.id AND i.revision = x.revision
    RETURNING i.id
)

-- apply_new_instances --
-- Fragment of the apply statement: new instances, inserted in their final state.
-- $1 document jsonb
new_instances AS (
    INSERT INTO workflow_instance
        (id, definition_id, definition_version, status, current_step_ids, variables,
         join_arrivals, step_attempts, started_at, completed_at, failure_reason, business_key)
    SELECT x.id, x.definition_id, x.definition_version, x.status, x.current_step_ids,
           x.variables, x.join_arrivals, x.step_attempts, x.started_at, x.completed_at,
           x.failure_reason, x.business_key
    FROM jsonb_to_recordset($1::jsonb -> 'instances') AS x(
        id text, definition_id text, definition_version integer, status text,
        current_step_ids text[], variables jsonb, join_arrivals jsonb, step_attempts jsonb,
        started_at timestamptz, completed_at timestamptz, failure_reason text,
        business_key text)
)

-- apply_new_executions --
-- Fragment of the apply statement: new step executions (finished already when they also ended).
-- $1 document jsonb
new_executions AS (
    INSERT INTO step_execution
        (id, instance_id, step_id, step_type, attempt_number, status, started_at, ended_at,
         failure_reason, input_snapshot, output_snapshot)
    SELECT x.id, x.instance_id, x.step_id, x.step_type, x.attempt_number, x.status,
           x.started_at, x.ended_at, x.failure_reason, x.input_snapshot, x.output_snapshot
    FROM jsonb_to_recordset($1::jsonb -> 'executions') AS x(
        g text, id text, instance_id text, step_id text, step_type text,
        attempt_number integer, status text, started_at timestamptz, ended_at timestamptz,
        failure_reason text, input_snapshot jsonb, output_snapshot jsonb)
    WHERE x.g IS NULL OR x.g IN (SELECT id FROM saved)
)

-- apply_finished_executions --
-- Fragment of the apply statement: step executions that ended.
-- $1 document jsonb
finished_executions AS (
    UPDATE step_execution AS e
    SET status = x.status, ended_at = x.ended_at, failure_reason = x.failure_reason,
        output_snapshot = x.output_snapshot
    FROM jsonb_to_recordset($1::jsonb -> 'finishes') AS x(
        g text, id text, status text, ended_at timestamptz, failure_reason text,
        output_snapshot jsonb)
    WHERE e.id = x.id AND (x.g IS NULL OR x.g IN (SELECT id FROM saved))
)

-- apply_new_jobs --
-- Fragment of the apply statement: new jobs.
-- $1 document jsonb
new_jobs AS (
    INSERT INTO job
        (id, instance_id, step_execution_id, step_id, job_type, status, worker_id, locked_at,
         lock_expires_at, retries_remaining, payload, created_at, ended_at)
    SELECT x.id, x.instance_id, x.step_execution_id, x.step_id, x.job_type, x.status,
           x.worker_id, x.locked_at, x.lock_expires_at, x.retries_remaining, x.payload,
           x.created_at, x.ended_at
    FROM jsonb_to_recordset($1::jsonb -> 'jobs') AS x(
        g text, id text, instance_id text, step_execution_id text, step_id text, job_type text,
        status text, worker_id text, locked_at timestamptz, lock_expires_at timestamptz,
        retries_remaining integer, payload jsonb, created_at timestamptz, ended_at timestamptz)
    WHERE x.g IS NULL OR x.g IN (SELECT id FROM saved)
    RETURNING job.job_type, job.status
)

-- apply_ended_jobs --
-- Fragment of the apply statement: jobs COMPLETED or FAILED.
-- $1 document jsonb
ended_jobs AS (
    -- COMPLETED or FAILED; an anonymous report keeps the recorded worker
    UPDATE job
    SET status = x.status, worker_id = coalesce(x.worker_id, job.worker_id), ended_at = x.at
    FROM jsonb_to_recordset($1::jsonb -> 'job_ends') AS x(
        g text, id text, status text, worker_id text, at timestamptz)
    WHERE job.id = x.id AND (x.g IS NULL OR x.g IN (SELECT id FROM saved))
)

-- apply_retried_jobs --
-- Fragment of the apply statement: jobs claimable again with a new retry budget.
-- $1 document jsonb
retried_jobs AS (
    -- claimable again with a new retry budget, keeping created_at
    UPDATE job
    SET status = 'UNLOCKED', worker_id = NULL, locked_at = NULL, lock_expires_at = NULL,
        retries_remaining = x.retries_remaining
    FROM jsonb_to_recordset($1::jsonb -> 'job_retries') AS x(
        g text, id text, retries_remaining integer)
    WHERE job.id = x.id AND (x.g IS NULL OR x.g IN (SELECT id FROM saved))
    RETURNING job.job_type
)

-- apply_new_tasks --
-- Fragment of the apply statement: new user tasks.
-- $1 document jsonb
new_tasks AS (
    INSERT INTO user_task
        (id, instance_id, step_execution_id, step_id, status, payload, created_at, result,
         completed_by, completed_at)
    SELECT x.id, x.instance_id, x.step_execution_id, x.step_id, x.status, x.payload,
           x.created_at, x.result, x.completed_by, x.completed_at
    FROM jsonb_to_recordset($1::jsonb -> 'tasks') AS x(
        g text, id text, instance_id text, step_execution_id text, step_id text, status text,
        payload jsonb, created_at timestamptz, result jsonb, completed_by text,
        completed_at timestamptz)
    WHERE x.g IS NULL OR x.g IN (SELECT id FROM saved)
)

-- apply_completed_tasks --
-- Fragment of the apply statement: user tasks completed.
-- $1 document jsonb
completed_tasks AS (
    UPDATE user_task
    SET status = 'COMPLETED', result = x.result, completed_by = x.completed_by,
        completed_at = x.at
    FROM jsonb_to_recordset($1::jsonb -> 'task_completions') AS x(
        g text, id text, result jsonb, completed_by text, at timestamptz)
    WHERE user_task.id = x.id AND (x.g IS NULL OR x.g IN (SELECT id FROM saved))
)

-- apply_new_timers --
-- Fragment of the apply statement: new boundary timers.
-- $1 document jsonb
new_timers AS (
    INSERT INTO boundary_event_schedule
        (id, instance_id, step_execution_id, target_step_id, fire_at, interrupting, status)
    SELECT x.id, x.instance_id, x.step_execution_id, x.target_step_id, x.fire_at,
           x.interrupting, x.status
    FROM jsonb_to_recordset($1::jsonb -> 'timers') AS x(
        g text, id text, instance_id text, step_execution_id text, target_step_id text,
        fire_at timestamptz, interrupting boolean, status text)
    WHERE x.g IS NULL OR x.g IN (SELECT id FROM saved)
)

-- apply_fired_timers --
-- Fragment of the apply statement: boundary timers that fired.
-- $1 document jsonb
fired_timers AS (
    UPDATE boundary_event_schedule
    SET status = 'FIRED'
    FROM jsonb_to_recordset($1::jsonb -> 'timers_fired') AS x(g text, id text)
    WHERE boundary_event_schedule.id = x.id AND (x.g IS NULL OR x.g IN (SELECT id FROM saved))
)

-- apply_cancels --
-- Fragment of the apply statement: cancellations of the open work of an instance (of some executions only, when execution_ids is not NULL).
-- $1 document jsonb
cancels AS (
    -- open work of an instance (of some executions only, when execution_ids is not NULL)
    SELECT x.instance_id, x.at, x.execution_ids, x.timers_only
    FROM jsonb_to_recordset($1::jsonb -> 'cancels') AS x(
        g text, instance_id text, at timestamptz, execution_ids text[], timers_only boolean)
    WHERE x.g IS NULL OR x.g IN (SELECT id FROM saved)
)

-- apply_cancelled_jobs --
-- Fragment of the apply statement: open jobs cancelled (requires cancels).
-- $1 document jsonb
cancelled_jobs AS (
    UPDATE job
    SET status = 'CANCELLED', ended_at = c.at
    FROM cancels AS c
    WHERE job.instance_id = ANY(ARRAY(SELECT instance_id FROM cancels))  -- an index condition
      AND job.instance_id = c.instance_id
      AND job.status IN ('UNLOCKED', 'LOCKED')
      AND (c.execution_ids IS NULL OR job.step_execution_id = ANY(c.execution_ids))
      AND NOT c.timers_only
      AND job.id NOT IN (SELECT x.id FROM jsonb_to_recordset($1::jsonb -> 'job_ends') AS x(id text))
      AND job.id NOT IN (SELECT x.id FROM jsonb_to_recordset($1::jsonb -> 'job_retries') AS x(id text))
)

-- apply_cancelled_tasks --
-- Fragment of the apply statement: open user tasks cancelled (requires cancels).
-- $1 document jsonb
cancelled_tasks AS (
    UPDATE user_task
    SET status = 'CANCELLED'
    FROM cancels AS c
    WHERE user_task.instance_id = ANY(ARRAY(SELECT instance_id FROM cancels))  -- an index condition
      AND user_task.instance_id = c.instance_id
      AND user_task.status = 'OPEN'
      AND (c.execution_ids IS NULL OR user_task.step_execution_id = ANY(c.execution_ids))
      AND NOT c.timers_only
      AND user_task.id NOT IN (
          SELECT x.id FROM jsonb_to_recordset($1::jsonb -> 'task_completions') AS x(id text))
)

-- apply_cancelled_timers --
-- Fragment of the apply statement: pending timers cancelled (requires cancels).
-- $1 document jsonb
cancelled_timers AS (
    UPDATE boundary_event_schedule
    SET status = 'CANCELLED'
    FROM cancels AS c
    WHERE boundary_event_schedule.instance_id = ANY(ARRAY(SELECT instance_id FROM cancels))  -- an index condition
      AND boundary_event_schedule.instance_id = c.instance_id
      AND boundary_event_schedule.status = 'PENDING'
      AND (c.execution_ids IS NULL
           OR boundary_event_schedule.step_execution_id = ANY(c.execution_ids))
      AND boundary_event_schedule.id NOT IN (
          SELECT x.id FROM jsonb_to_recordset($1::jsonb -> 'timers_fired') AS x(id text))
)

-- apply_audits --
-- Fragment of the apply statement: audit log entries.
-- $1 document jsonb
audits AS (
    INSERT INTO audit_log (actor, principal, kind, instance_id, detail)
    SELECT x.actor, x.principal, x.kind, x.instance_id, x.detail
    FROM jsonb_to_recordset($1::jsonb -> 'audits') AS x(
        g text, actor text, principal text, kind text, instance_id text, detail jsonb)
    WHERE x.g IS NULL OR x.g IN (SELECT id FROM saved)
)

-- apply_result_saved --
-- Result column of the apply statement (with apply_saved): the ids of the instances saved.
-- (no parameters)
ARRAY(SELECT id FROM saved) AS saved

-- apply_result_woken_new --
-- Result column of the apply statement (with apply_new_jobs): wake the pollers of each type that got a claimable job (sent at commit).
-- (no parameters)
(SELECT count(pg_notify('rochallor_jobs', t.job_type))
 FROM (SELECT DISTINCT job_type FROM new_jobs WHERE status = 'UNLOCKED') AS t) AS woken_new

-- apply_result_woken_retried --
-- Result column of the apply statement (with apply_retried_jobs): wake the pollers of retried jobs.
-- (no parameters)
(SELECT count(pg_notify('rochallor_jobs', t.job_type))
 FROM (SELECT DISTINCT job_type FROM retried_jobs) AS t) AS woken_retried

-- try_advisory_lock --
-- Take a session-level advisory lock if it is free.
-- $1 key bigint
SELECT pg_try_advisory_lock($1);

-- advisory_unlock --
-- Release a session-level advisory lock.
-- $1 key bigint
SELECT pg_advisory_unlock($1);

-- ping --
-- Check that a connection still answers.
-- (no parameters)
SELECT 1;
