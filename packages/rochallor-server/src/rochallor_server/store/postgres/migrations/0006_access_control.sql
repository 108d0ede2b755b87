-- Access control: API keys (only the SHA-256 of each secret is stored) and the principal (key
-- id or token subject) that caused each audit entry.

CREATE TABLE api_key (
    id              text PRIMARY KEY,
    name            text NOT NULL,
    role            text NOT NULL CHECK (role IN ('admin', 'operator', 'worker', 'viewer')),
    -- worker keys: the only job types the key may work on (NULL: any)
    job_types       text[],
    secret_sha256   bytea NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    created_by      text,
    revoked_at      timestamptz
);

-- key:<id> or jwt:<subject> of the request that caused the entry; NULL for the engine's own
-- work (timers, lease expiry, chaining) and when access control is off
ALTER TABLE audit_log ADD COLUMN principal text;
