-- Snapshot of the schema after every migration in migrations/ (tests/integration/
-- test_migrations.py proves that migrating an empty database yields exactly this). Update it
-- together with each new migration. Executing this file on an empty database is equivalent to
-- migrating it: it also records the migrations as applied.

CREATE TABLE schema_migrations (
    version    text PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO schema_migrations (version) VALUES ('0001_initial'), ('0002_instance_revision'),
    ('0003_event_indexes'), ('0006_access_control');

CREATE TABLE workflow_definition (
    pk                          bigserial PRIMARY KEY,
    id                          text NOT NULL,
    version                     integer NOT NULL,
    name                        text NOT NULL,
    description                 text,
    -- the definition as uploaded, re-serialised in upload order (jsonb would sort keys, and
    -- the order of conditionalNextSteps and transformations is significant)
    raw_json                    text NOT NULL,
    parsed_steps                jsonb NOT NULL,
    auto_start_next_workflow_id text,
    uploaded_at                 timestamptz NOT NULL DEFAULT now(),
    uploaded_by                 text,
    CONSTRAINT uq_workflow_definition_id_version UNIQUE (id, version)
);
CREATE INDEX ix_workflow_definition_uploaded_at ON workflow_definition (uploaded_at DESC);

CREATE TABLE workflow_instance (
    id                  text PRIMARY KEY,
    definition_id       text NOT NULL,
    definition_version  integer NOT NULL,
    status              text NOT NULL,
    current_step_ids    text[] NOT NULL DEFAULT '{}',
    variables           jsonb NOT NULL DEFAULT '{}',
    -- arrivals counted per JOIN_GATEWAY step id while the join waits
    join_arrivals       jsonb NOT NULL DEFAULT '{}',
    -- executions entered so far per step id (the next attemptNumber is this + 1)
    step_attempts       jsonb NOT NULL DEFAULT '{}',
    started_at          timestamptz NOT NULL DEFAULT now(),
    completed_at        timestamptz,
    failure_reason      text,
    business_key        text,
    -- bumped by every event; an event's write applies only at the revision it read
    revision            bigint NOT NULL DEFAULT 0
);
CREATE INDEX ix_workflow_instance_definition_status ON workflow_instance (definition_id, status);
CREATE INDEX ix_workflow_instance_business_key ON workflow_instance (business_key);
CREATE INDEX ix_workflow_instance_started_at ON workflow_instance (started_at DESC);

CREATE TABLE step_execution (
    id              text PRIMARY KEY,
    instance_id     text NOT NULL REFERENCES workflow_instance (id),
    step_id         text NOT NULL,
    step_type       text NOT NULL,
    attempt_number  integer NOT NULL DEFAULT 1,
    status          text NOT NULL,
    started_at      timestamptz NOT NULL DEFAULT now(),
    ended_at        timestamptz,
    input_snapshot  jsonb,
    output_snapshot jsonb,
    failure_reason  text
);
CREATE INDEX ix_step_execution_instance_started ON step_execution (instance_id, started_at, id);
-- an event reads its instance's running executions
CREATE INDEX ix_step_execution_running ON step_execution (instance_id, started_at, id)
    WHERE status = 'RUNNING';

CREATE TABLE job (
    id                  text PRIMARY KEY,
    instance_id         text NOT NULL,
    step_execution_id   text NOT NULL REFERENCES step_execution (id),
    step_id             text NOT NULL,
    job_type            text NOT NULL,
    status              text NOT NULL DEFAULT 'UNLOCKED',
    worker_id           text,
    locked_at           timestamptz,
    lock_expires_at     timestamptz,
    retries_remaining   integer NOT NULL DEFAULT 0,
    payload             jsonb NOT NULL DEFAULT '{}',
    created_at          timestamptz NOT NULL DEFAULT now(),
    ended_at            timestamptz
);
-- Claiming reads only this partial index, so finished jobs never slow a poll down.
CREATE INDEX ix_job_claimable ON job (job_type, created_at, id) WHERE status = 'UNLOCKED';
CREATE INDEX ix_job_lease ON job (lock_expires_at) WHERE status = 'LOCKED';
CREATE INDEX ix_job_instance_open ON job (instance_id) WHERE status IN ('UNLOCKED', 'LOCKED');
-- The job table churns: vacuum it early so dead tuples do not pile up under load.
ALTER TABLE job SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02);

CREATE TABLE user_task (
    id                  text PRIMARY KEY,
    instance_id         text NOT NULL REFERENCES workflow_instance (id),
    step_execution_id   text NOT NULL REFERENCES step_execution (id),
    step_id             text NOT NULL,
    status              text NOT NULL DEFAULT 'OPEN',
    assignee            text,
    assignee_group      text,
    payload             jsonb,
    result              jsonb,
    completed_by        text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    completed_at        timestamptz
);
CREATE INDEX ix_user_task_instance ON user_task (instance_id);
CREATE INDEX ix_user_task_open ON user_task (instance_id, step_id) WHERE status = 'OPEN';

CREATE TABLE boundary_event_schedule (
    id                  text PRIMARY KEY,
    instance_id         text NOT NULL REFERENCES workflow_instance (id),
    step_execution_id   text NOT NULL REFERENCES step_execution (id),
    target_step_id      text NOT NULL,
    fire_at             timestamptz NOT NULL,
    interrupting        boolean NOT NULL DEFAULT false,
    -- PENDING, FIRED or CANCELLED
    status              text NOT NULL DEFAULT 'PENDING'
);
CREATE INDEX ix_boundary_due ON boundary_event_schedule (fire_at) WHERE status = 'PENDING';
CREATE INDEX ix_boundary_execution ON boundary_event_schedule (step_execution_id)
    WHERE status = 'PENDING';
-- Cancelling an instance's open work finds its pending timers by instance.
CREATE INDEX ix_boundary_instance_pending ON boundary_event_schedule (instance_id)
    WHERE status = 'PENDING';

CREATE TABLE audit_log (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    actor       text NOT NULL,
    kind        text NOT NULL,
    instance_id text,
    detail      jsonb,
    -- key:<id> or jwt:<subject> of the request that caused the entry (NULL: the engine itself,
    -- or access control off)
    principal   text
);
CREATE INDEX ix_audit_log_instance ON audit_log (instance_id) WHERE instance_id IS NOT NULL;
CREATE INDEX ix_audit_log_kind_at ON audit_log (kind, at DESC);

CREATE TABLE dispatch_outbox (
    id          text PRIMARY KEY,
    job_id      text NOT NULL REFERENCES job (id),
    instance_id text NOT NULL,
    job_type    text NOT NULL,
    payload     bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ix_dispatch_outbox_created ON dispatch_outbox (created_at);

CREATE TABLE api_key (
    id              text PRIMARY KEY,
    name            text NOT NULL,
    role            text NOT NULL CHECK (role IN ('admin', 'operator', 'worker', 'viewer')),
    -- worker keys: the only job types the key may work on (NULL: any)
    job_types       text[],
    -- only the SHA-256 of the secret is stored
    secret_sha256   bytea NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    created_by      text,
    revoked_at      timestamptz
);
