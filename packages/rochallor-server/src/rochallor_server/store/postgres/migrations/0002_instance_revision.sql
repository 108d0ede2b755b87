-- Optimistic concurrency for instance events: every event reads the instance (no row lock)
-- and writes all of its rows in one statement that applies only if the instance's revision
-- is still the one it read; the statement bumps the revision.

ALTER TABLE workflow_instance ADD COLUMN revision bigint NOT NULL DEFAULT 0;
