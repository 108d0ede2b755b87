-- Every statement of the PostgreSQL store but the event write (its fragments are in apply.sql).
-- Each block starts with a `-- name --` header, then a one-line description, then the
-- positional parameters in order (`-- (no parameters)` when there are none). statements.py
-- parses this file at import and checks the parameter lists.
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
-- A page of instances, newest first; each NULL filter matches everything (started_after inclusive, started_before exclusive).
-- $1 definition_id text, $2 status text, $3 business_key text, $4 definition_version int, $5 started_after timestamptz, $6 started_before timestamptz, $7 offset int, $8 limit int
SELECT id, definition_id, definition_version, status, current_step_ids, variables,
       join_arrivals, step_attempts, started_at, completed_at, failure_reason, business_key,
       revision
FROM workflow_instance
WHERE ($1::text IS NULL OR definition_id = $1)
  AND ($2::text IS NULL OR status = $2)
  AND ($3::text IS NULL OR business_key = $3)
  AND ($4::int IS NULL OR definition_version = $4)
  AND ($5::timestamptz IS NULL OR started_at >= $5)
  AND ($6::timestamptz IS NULL OR started_at < $6)
ORDER BY started_at DESC, id DESC
OFFSET $7
LIMIT $8;

-- count_instances --
-- How many instances list_instances matches in all.
-- $1 definition_id text, $2 status text, $3 business_key text, $4 definition_version int, $5 started_after timestamptz, $6 started_before timestamptz
SELECT count(*)
FROM workflow_instance
WHERE ($1::text IS NULL OR definition_id = $1)
  AND ($2::text IS NULL OR status = $2)
  AND ($3::text IS NULL OR business_key = $3)
  AND ($4::int IS NULL OR definition_version = $4)
  AND ($5::timestamptz IS NULL OR started_at >= $5)
  AND ($6::timestamptz IS NULL OR started_at < $6);

-- count_instances_by_status --
-- How many instances the filters of list_instances (but the status) match, per status.
-- $1 definition_id text, $2 business_key text, $3 definition_version int, $4 started_after timestamptz, $5 started_before timestamptz
SELECT status, count(*) AS n
FROM workflow_instance
WHERE ($1::text IS NULL OR definition_id = $1)
  AND ($2::text IS NULL OR business_key = $2)
  AND ($3::int IS NULL OR definition_version = $3)
  AND ($4::timestamptz IS NULL OR started_at >= $4)
  AND ($5::timestamptz IS NULL OR started_at < $5)
GROUP BY status;

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

-- definition_versions --
-- Every version of a definition, oldest first, with how many instances each has per status.
-- $1 id text
SELECT d.id, d.version, d.name, d.uploaded_at,
       coalesce((SELECT jsonb_object_agg(c.status, c.n)
                 FROM (SELECT i.status, count(*) AS n
                       FROM workflow_instance i
                       WHERE i.definition_id = d.id AND i.definition_version = d.version
                       GROUP BY i.status) AS c), '{}'::jsonb) AS counts
FROM workflow_definition d
WHERE d.id = $1
ORDER BY d.version;

-- instance_audit --
-- Audit entries of one instance after entry $2, oldest first.
-- $1 instance_id text, $2 after_id bigint, $3 limit int
SELECT id, at, actor, kind, instance_id, detail, principal
FROM audit_log
WHERE instance_id = $1 AND id > $2
ORDER BY id
LIMIT $3;

-- chain_links --
-- The instance a chained instance was started from, and the instances chained from it (from the instance-chained audit entries).
-- $1 instance_id text
SELECT (SELECT a.instance_id
        FROM audit_log a
        WHERE a.kind = 'instance-chained' AND a.detail ->> 'child' = $1
        ORDER BY a.id
        LIMIT 1) AS parent,
       ARRAY(SELECT a.detail ->> 'child'
             FROM audit_log a
             WHERE a.instance_id = $1 AND a.kind = 'instance-chained'
             ORDER BY a.id) AS children;

-- job_queues --
-- Per job type: open jobs UNLOCKED and LOCKED, the oldest UNLOCKED one, the jobs whose retries ran out on a still FAILED instance, and the workers seen since $1.
-- $1 seen_since timestamptz
WITH open_jobs AS (
    SELECT job_type,
           count(*) FILTER (WHERE status = 'UNLOCKED') AS unlocked,
           count(*) FILTER (WHERE status = 'LOCKED') AS locked,
           min(created_at) FILTER (WHERE status = 'UNLOCKED') AS oldest_unlocked_at
    FROM job
    WHERE status IN ('UNLOCKED', 'LOCKED')
    GROUP BY job_type
), exhausted AS (
    SELECT j.job_type, count(*) AS exhausted
    FROM job j
    JOIN workflow_instance i ON i.id = j.instance_id
    WHERE j.status = 'FAILED' AND i.status = 'FAILED' AND j.ended_at = i.completed_at
    GROUP BY j.job_type
), seen AS (
    SELECT job_type,
           array_agg(worker_id ORDER BY seen_at DESC, worker_id) AS workers,
           array_agg(seen_at ORDER BY seen_at DESC, worker_id) AS seen_at
    FROM worker_seen
    WHERE seen_at >= $1
    GROUP BY job_type
)
SELECT job_type,
       coalesce(o.unlocked, 0) AS unlocked,
       coalesce(o.locked, 0) AS locked,
       o.oldest_unlocked_at,
       coalesce(x.exhausted, 0) AS exhausted,
       coalesce(s.workers, '{}') AS workers,
       coalesce(s.seen_at, '{}') AS seen_at
FROM open_jobs o
FULL JOIN exhausted x USING (job_type)
FULL JOIN seen s USING (job_type)
ORDER BY job_type COLLATE "C";

-- exhausted_jobs --
-- A page of the jobs whose retries ran out and whose instance is still FAILED by them, latest first.
-- $1 job_type text, $2 offset int, $3 limit int
SELECT j.id, j.job_type, j.instance_id, j.step_id, j.worker_id, j.ended_at, e.failure_reason,
       i.definition_id, i.definition_version
FROM job j
JOIN workflow_instance i ON i.id = j.instance_id
JOIN step_execution e ON e.id = j.step_execution_id
WHERE j.status = 'FAILED' AND i.status = 'FAILED' AND j.ended_at = i.completed_at
  AND ($1::text IS NULL OR j.job_type = $1)
ORDER BY j.ended_at DESC, j.id DESC
OFFSET $2
LIMIT $3;

-- count_exhausted_jobs --
-- How many jobs exhausted_jobs matches in all.
-- $1 job_type text
SELECT count(*)
FROM job j
JOIN workflow_instance i ON i.id = j.instance_id
WHERE j.status = 'FAILED' AND i.status = 'FAILED' AND j.ended_at = i.completed_at
  AND ($1::text IS NULL OR j.job_type = $1);

-- record_workers --
-- Note that a worker polled some job types at $3; forget the workers not seen since $4.
-- $1 worker_id text, $2 job_types text[], $3 seen_at timestamptz, $4 forget_before timestamptz
WITH forgotten AS (
    -- (never a row this statement upserts: one statement must not touch a row twice)
    DELETE FROM worker_seen
    WHERE seen_at < $4 AND NOT (worker_id = $1 AND job_type = ANY($2::text[]))
)
INSERT INTO worker_seen (job_type, worker_id, seen_at)
SELECT t.job_type, $1, $3
FROM unnest($2::text[]) AS t(job_type)
ON CONFLICT (job_type, worker_id)
DO UPDATE SET seen_at = greatest(worker_seen.seen_at, excluded.seen_at);

-- next_pending_chain --
-- The oldest chained start not made yet, locked until the transaction ends (rows other transactions hold are skipped).
-- (no parameters)
SELECT id, parent_instance_id, definition_id, variables, business_key
FROM pending_chain
ORDER BY id
LIMIT 1
FOR UPDATE SKIP LOCKED;

-- delete_pending_chain --
-- Forget a chained start, in the transaction that made it.
-- $1 id bigint
DELETE FROM pending_chain WHERE id = $1;

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

-- outbox_batch --
-- Lock up to $2 outbox rows in drain order, skipping rows locked by others, rows of the job types in $1, and rows of an instance queued behind a row of those types (one instance's rows never overtake each other).
-- $1 held_job_types text[], $2 limit int
SELECT o.id, o.job_id, o.instance_id, o.job_type, o.payload, o.created_at
FROM dispatch_outbox o
WHERE NOT (o.job_type = ANY($1::text[]))
  AND NOT EXISTS (
      SELECT 1
      FROM dispatch_outbox h
      WHERE h.instance_id = o.instance_id
        AND h.job_type = ANY($1::text[])
        AND (h.created_at, h.id) < (o.created_at, o.id))
ORDER BY o.created_at, o.id
LIMIT $2
FOR UPDATE OF o SKIP LOCKED;

-- outbox_delete --
-- Forget published outbox rows.
-- $1 ids text[]
DELETE FROM dispatch_outbox WHERE id = ANY($1::text[]);

-- outbox_audit --
-- One DISPATCHED_VIA_BROKER audit row per published outbox row.
-- $1 instance_ids text[], $2 job_ids text[]
INSERT INTO audit_log (actor, kind, instance_id, detail)
SELECT 'dispatch-relay', 'DISPATCHED_VIA_BROKER', x.instance_id, jsonb_build_object('job_id', x.job_id)
FROM unnest($1::text[], $2::text[]) AS x(instance_id, job_id);

-- outbox_backlog --
-- How many outbox rows wait, and the creation time of the oldest.
-- (no parameters)
SELECT count(*) AS backlog, min(created_at) AS oldest FROM dispatch_outbox;

-- outbox_table_exists --
-- Whether the dispatch_outbox table exists in schema public.
-- (no parameters)
SELECT to_regclass('public.dispatch_outbox') IS NOT NULL;

-- service_task_job_types --
-- Every job type of a SERVICE_TASK step of any stored definition version.
-- (no parameters)
SELECT DISTINCT s.step ->> 'jobType' AS job_type
FROM workflow_definition d
CROSS JOIN LATERAL jsonb_array_elements(d.parsed_steps) AS s(step)
WHERE s.step ->> 'type' = 'SERVICE_TASK' AND coalesce(s.step ->> 'jobType', '') <> ''
ORDER BY 1;
