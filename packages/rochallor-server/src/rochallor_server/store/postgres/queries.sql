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

-- latest_definition_version --
-- The highest version number of a definition (starting an instance needs nothing else).
-- $1 id text
SELECT max(version) FROM workflow_definition WHERE id = $1;

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

-- insert_instance --
-- Create an instance row.
-- $1 id text, $2 definition_id text, $3 definition_version int, $4 status text, $5 current_step_ids text[], $6 variables jsonb, $7 join_arrivals jsonb, $8 step_attempts jsonb, $9 started_at timestamptz, $10 completed_at timestamptz, $11 failure_reason text, $12 business_key text
INSERT INTO workflow_instance
    (id, definition_id, definition_version, status, current_step_ids, variables, join_arrivals,
     step_attempts, started_at, completed_at, failure_reason, business_key)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12);

-- save_instance --
-- Write the mutable columns of an instance.
-- $1 id text, $2 status text, $3 current_step_ids text[], $4 variables jsonb, $5 join_arrivals jsonb, $6 step_attempts jsonb, $7 completed_at timestamptz, $8 failure_reason text
UPDATE workflow_instance
SET status = $2,
    current_step_ids = $3,
    variables = $4,
    join_arrivals = $5,
    step_attempts = $6,
    completed_at = $7,
    failure_reason = $8
WHERE id = $1;

-- get_instance --
-- One instance.
-- $1 id text
SELECT id, definition_id, definition_version, status, current_step_ids, variables,
       join_arrivals, step_attempts, started_at, completed_at, failure_reason, business_key
FROM workflow_instance
WHERE id = $1;

-- lock_instance --
-- One instance, row-locked until the transaction ends.
-- $1 id text
SELECT id, definition_id, definition_version, status, current_step_ids, variables,
       join_arrivals, step_attempts, started_at, completed_at, failure_reason, business_key
FROM workflow_instance
WHERE id = $1
FOR UPDATE;

-- running_executions --
-- The RUNNING step executions of an instance, in the order they were entered.
-- $1 instance_id text
-- Run after lock_instance, as its own statement: a statement that waited for the row lock
-- still reads other tables as of its start, so it would miss what the previous holder wrote.
SELECT id, instance_id, step_id, step_type, attempt_number, status, started_at, ended_at,
       failure_reason
FROM step_execution
WHERE instance_id = $1 AND status = 'RUNNING'
ORDER BY started_at, id;

-- list_instances --
-- A page of instances, newest first; each NULL filter matches everything.
-- $1 definition_id text, $2 status text, $3 business_key text, $4 offset int, $5 limit int
SELECT id, definition_id, definition_version, status, current_step_ids, variables,
       join_arrivals, step_attempts, started_at, completed_at, failure_reason, business_key
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

-- insert_execution --
-- Record the entry into a step (already finished when it left within the same event).
-- $1 id text, $2 instance_id text, $3 step_id text, $4 step_type text, $5 attempt_number int, $6 status text, $7 started_at timestamptz, $8 ended_at timestamptz, $9 failure_reason text, $10 input_snapshot jsonb, $11 output_snapshot jsonb
INSERT INTO step_execution
    (id, instance_id, step_id, step_type, attempt_number, status, started_at, ended_at,
     failure_reason, input_snapshot, output_snapshot)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11);

-- finish_execution --
-- Close a step execution.
-- $1 id text, $2 status text, $3 ended_at timestamptz, $4 failure_reason text, $5 output_snapshot jsonb
UPDATE step_execution
SET status = $2, ended_at = $3, failure_reason = $4, output_snapshot = $5
WHERE id = $1;

-- insert_job --
-- Create a job and wake the pollers of its type (the notification is sent at commit).
-- $1 id text, $2 instance_id text, $3 step_execution_id text, $4 step_id text, $5 job_type text, $6 status text, $7 worker_id text, $8 locked_at timestamptz, $9 lock_expires_at timestamptz, $10 retries_remaining int, $11 payload jsonb, $12 created_at timestamptz
WITH inserted AS (
    INSERT INTO job
        (id, instance_id, step_execution_id, step_id, job_type, status, worker_id, locked_at,
         lock_expires_at, retries_remaining, payload, created_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
    RETURNING job_type
)
SELECT pg_notify('rochallor_jobs', job_type) FROM inserted;

-- lock_job --
-- One job, row-locked until the transaction ends.
-- $1 id text
SELECT id, instance_id, step_execution_id, step_id, job_type, status, worker_id, locked_at,
       lock_expires_at, retries_remaining, payload, created_at
FROM job
WHERE id = $1
FOR UPDATE;

-- complete_job --
-- Mark a job COMPLETED, recording the completing worker when known.
-- $1 id text, $2 worker_id text, $3 ended_at timestamptz
UPDATE job
SET status = 'COMPLETED', worker_id = coalesce($2, worker_id), ended_at = $3
WHERE id = $1;

-- fail_job --
-- Mark a job FAILED (terminal), recording the reporting worker when known.
-- $1 id text, $2 worker_id text, $3 ended_at timestamptz
UPDATE job
SET status = 'FAILED', worker_id = coalesce($2, worker_id), ended_at = $3
WHERE id = $1;

-- retry_job --
-- Make a job claimable again with a new retry budget, keeping created_at; wake its pollers.
-- $1 id text, $2 retries_remaining int
WITH retried AS (
    UPDATE job
    SET status = 'UNLOCKED', worker_id = NULL, locked_at = NULL, lock_expires_at = NULL,
        retries_remaining = $2
    WHERE id = $1
    RETURNING job_type
)
SELECT pg_notify('rochallor_jobs', job_type) FROM retried;

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

-- insert_user_task --
-- Create a user task.
-- $1 id text, $2 instance_id text, $3 step_execution_id text, $4 step_id text, $5 status text, $6 payload jsonb, $7 created_at timestamptz
INSERT INTO user_task (id, instance_id, step_execution_id, step_id, status, payload, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7);

-- open_user_task --
-- The OPEN user task of a step of an instance.
-- $1 instance_id text, $2 step_id text
SELECT id, instance_id, step_execution_id, step_id, status, payload, created_at
FROM user_task
WHERE instance_id = $1 AND step_id = $2 AND status = 'OPEN'
ORDER BY created_at DESC, id DESC
LIMIT 1;

-- complete_user_task --
-- Mark a user task COMPLETED with the submitted variables.
-- $1 id text, $2 result jsonb, $3 completed_by text, $4 completed_at timestamptz
UPDATE user_task
SET status = 'COMPLETED', result = $2, completed_by = $3, completed_at = $4
WHERE id = $1;

-- insert_timer --
-- Schedule a boundary timer.
-- $1 id text, $2 instance_id text, $3 step_execution_id text, $4 target_step_id text, $5 fire_at timestamptz, $6 interrupting boolean, $7 status text
INSERT INTO boundary_event_schedule
    (id, instance_id, step_execution_id, target_step_id, fire_at, interrupting, status)
VALUES ($1, $2, $3, $4, $5, $6, $7);

-- lock_timer --
-- One boundary timer, row-locked until the transaction ends.
-- $1 id text
SELECT id, instance_id, step_execution_id, target_step_id, fire_at, interrupting, status
FROM boundary_event_schedule
WHERE id = $1
FOR UPDATE;

-- mark_timer_fired --
-- Record that a boundary timer fired.
-- $1 id text
UPDATE boundary_event_schedule SET status = 'FIRED' WHERE id = $1;

-- due_timers --
-- Up to $2 pending timers due at $1, earliest first (not locked: each is re-checked under lock).
-- $1 now timestamptz, $2 limit int
SELECT id, instance_id, step_execution_id, target_step_id, fire_at, interrupting, status
FROM boundary_event_schedule
WHERE status = 'PENDING' AND fire_at <= $1
ORDER BY fire_at, id
LIMIT $2;

-- cancel_open_work --
-- Cancel open jobs and user tasks (unless $4) and pending timers of an instance, of the executions $3 only when not NULL.
-- $1 instance_id text, $2 at timestamptz, $3 execution_ids text[], $4 timers_only boolean
WITH jobs AS (
    UPDATE job
    SET status = 'CANCELLED', ended_at = $2
    WHERE instance_id = $1
      AND status IN ('UNLOCKED', 'LOCKED')
      AND ($3::text[] IS NULL OR step_execution_id = ANY($3::text[]))
      AND NOT $4::boolean
    RETURNING 1
), tasks AS (
    UPDATE user_task
    SET status = 'CANCELLED'
    WHERE instance_id = $1
      AND status = 'OPEN'
      AND ($3::text[] IS NULL OR step_execution_id = ANY($3::text[]))
      AND NOT $4::boolean
    RETURNING 1
), timers AS (
    UPDATE boundary_event_schedule
    SET status = 'CANCELLED'
    WHERE instance_id = $1
      AND status = 'PENDING'
      AND ($3::text[] IS NULL OR step_execution_id = ANY($3::text[]))
    RETURNING 1
)
-- Data-modifying CTEs always run to completion, whether or not their rows are read.
SELECT (SELECT count(*) FROM jobs), (SELECT count(*) FROM tasks), (SELECT count(*) FROM timers);

-- insert_audit --
-- Append an audit log entry.
-- $1 actor text, $2 kind text, $3 instance_id text, $4 detail jsonb
INSERT INTO audit_log (actor, kind, instance_id, detail) VALUES ($1, $2, $3, $4);

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
