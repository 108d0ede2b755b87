-- Durable chaining: a parent's final transaction records the chained start it asks for; the
-- engine (right after the commit, and a sweeper after a crash) starts the child and deletes
-- the row in one transaction, so each request starts exactly one child.

CREATE TABLE pending_chain (
    id                 bigserial PRIMARY KEY,
    parent_instance_id text NOT NULL,
    definition_id      text NOT NULL,
    variables          jsonb NOT NULL,
    business_key       text,
    created_at         timestamptz NOT NULL DEFAULT now()
);
