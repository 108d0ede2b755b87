-- The fragments of the apply statement, the one statement that writes the commands of a batch of
-- events (apply.py assembles it: `WITH` + fragments + `SELECT` + result columns, all whole
-- blocks of this file, the fragments in this order). Same block format as queries.sql.
--
-- $1 is the document: one JSON array of rows per kind (`save`, `jobs`, …). The column list of
-- the `jsonb_to_recordset` that reads a kind in its first fragment is the one declaration of
-- that kind's rows (name and type): apply.py reads it at import and refuses a row with a
-- missing or unknown key, and test_store_apply_columns.py holds the other reads, the INSERT,
-- SELECT and SET lists, and the schema's column types to it.
--
-- Guards: `g` is the instance an event saves; the event's rows are written only if `saved`
-- saved it (at the revision the event read). `j` is the job an event retries; its audit
-- entries are written only if `retried_jobs` retried it. Both guard CTEs are in every apply
-- statement: when the document has no `save` (or `job_retries`) rows, the empty relation of
-- `apply_saved_none` (or `apply_retried_jobs_none`) stands in for the UPDATE, so every other
-- fragment reads the same whatever the document holds (an unguarded row, `g` NULL, passes).
-- An empty UPDATE would do the same, but PostgreSQL still sets up its executor nodes and
-- locks for every statement (measurably slower for single-event statements).

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

-- apply_saved_none --
-- Fragment of the apply statement in place of apply_saved when the document saves no instance: no instance saved.
-- (no parameters)
saved AS (SELECT NULL::text AS id WHERE false)

-- apply_retried_jobs --
-- Fragment of the apply statement: jobs claimable again with a new retry budget, only if still as the event read them.
-- $1 document jsonb
retried_jobs AS (
    -- claimable again with a new retry budget, keeping created_at; only while the job is as
    -- the failing event read it (status, worker and lease), like every other job write: a
    -- cancel, a completion, a lease reclaim or another replica that got there first wins,
    -- and the event (reported not applied) is decided again
    UPDATE job
    SET status = 'UNLOCKED', worker_id = NULL, locked_at = NULL, lock_expires_at = NULL,
        retries_remaining = x.retries_remaining
    FROM jsonb_to_recordset($1::jsonb -> 'job_retries') AS x(
        g text, id text, retries_remaining integer, status text, worker_id text,
        locked_at timestamptz)
    WHERE job.id = x.id AND (x.g IS NULL OR x.g IN (SELECT id FROM saved))
      AND job.status = x.status
      AND job.worker_id IS NOT DISTINCT FROM x.worker_id
      AND job.locked_at IS NOT DISTINCT FROM x.locked_at
    RETURNING job.id, job.job_type
)

-- apply_retried_jobs_none --
-- Fragment of the apply statement in place of apply_retried_jobs when the document retries no job: no job retried.
-- (no parameters)
retried_jobs AS (SELECT NULL::text AS id, NULL::text AS job_type WHERE false)

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

-- apply_new_outbox --
-- Fragment of the apply statement: dispatch outbox rows (kafka_outbox mode), created now: the relay drains them in that order.
-- $1 document jsonb
new_outbox AS (
    INSERT INTO dispatch_outbox (id, job_id, instance_id, job_type, payload, created_at)
    SELECT x.id, x.job_id, x.instance_id, x.job_type, decode(x.payload, 'base64'), now()
    FROM jsonb_to_recordset($1::jsonb -> 'outbox') AS x(
        g text, id text, job_id text, instance_id text, job_type text, payload text)
    WHERE x.g IS NULL OR x.g IN (SELECT id FROM saved)
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

-- apply_chains --
-- Fragment of the apply statement: chained starts asked for (made after commit, or by the chain sweeper).
-- $1 document jsonb
chains AS (
    INSERT INTO pending_chain (parent_instance_id, definition_id, variables, business_key)
    SELECT x.parent_instance_id, x.definition_id, x.variables, x.business_key
    FROM jsonb_to_recordset($1::jsonb -> 'chains') AS x(
        g text, parent_instance_id text, definition_id text, variables jsonb,
        business_key text)
    WHERE x.g IS NULL OR x.g IN (SELECT id FROM saved)
)

-- apply_audits --
-- Fragment of the apply statement: audit log entries (an entry of an event that retries a job, ``j``, only if the retry applied).
-- $1 document jsonb
audits AS (
    INSERT INTO audit_log (actor, principal, kind, instance_id, detail)
    SELECT x.actor, x.principal, x.kind, x.instance_id, x.detail
    FROM jsonb_to_recordset($1::jsonb -> 'audits') AS x(
        g text, j text, actor text, principal text, kind text, instance_id text, detail jsonb)
    WHERE (x.g IS NULL OR x.g IN (SELECT id FROM saved))
      AND (x.j IS NULL OR x.j IN (SELECT id FROM retried_jobs))
)

-- apply_result_saved --
-- Result column of the apply statement: the ids of the instances saved.
-- (no parameters)
ARRAY(SELECT id FROM saved) AS saved

-- apply_result_retried --
-- Result column of the apply statement: the ids of the jobs retried.
-- (no parameters)
ARRAY(SELECT id FROM retried_jobs) AS retried

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
