-- Indexes for the event path: an event reads its instance's running step executions, so those
-- get a partial index of their own; two indexes no statement reads are dropped (each one was
-- maintained on every job or step-execution insert).

CREATE INDEX ix_step_execution_running ON step_execution (instance_id, started_at, id)
    WHERE status = 'RUNNING';
DROP INDEX ix_step_execution_instance_step;
DROP INDEX ix_job_step_execution;
