-- What the operations console reads: the workers seen polling each job type, the jobs whose
-- retries ran out (few rows: a partial index), and the parent of a chained instance (the
-- instance-chained audit entry names the child).

CREATE TABLE worker_seen (
    job_type    text NOT NULL,
    worker_id   text NOT NULL,
    seen_at     timestamptz NOT NULL,
    PRIMARY KEY (job_type, worker_id)
);
CREATE INDEX ix_job_failed ON job (job_type, ended_at) WHERE status = 'FAILED';
CREATE INDEX ix_audit_log_chained_child ON audit_log ((detail ->> 'child'))
    WHERE kind = 'instance-chained';
