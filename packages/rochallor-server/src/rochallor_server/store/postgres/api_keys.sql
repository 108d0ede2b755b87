-- insert_api_key --
-- Store a new key (its secret only as a hash).
-- $1 id text, $2 name text, $3 role text, $4 job_types text[], $5 secret_sha256 bytea, $6 created_at timestamptz, $7 created_by text
INSERT INTO api_key (id, name, role, job_types, secret_sha256, created_at, created_by)
VALUES ($1, $2, $3, $4, $5, $6, $7)

-- get_api_key --
-- One key with its secret hash.
-- $1 id text
SELECT id, name, role, job_types, secret_sha256, created_at, created_by, revoked_at
FROM api_key WHERE id = $1

-- list_api_keys --
-- Every key, oldest first, without secret hashes.
-- (no parameters)
SELECT id, name, role, job_types, created_at, created_by, revoked_at
FROM api_key ORDER BY created_at, id

-- revoke_api_key --
-- Revoke a key (keeps the first revocation time) and tell every replica at commit.
-- $1 id text, $2 at timestamptz
WITH revoked AS (
    UPDATE api_key SET revoked_at = coalesce(revoked_at, $2) WHERE id = $1
    RETURNING id, name, role, job_types, created_at, created_by, revoked_at
)
SELECT revoked.*, pg_notify('rochallor_api_keys', revoked.id) AS notified FROM revoked

-- has_active_api_keys --
-- Whether any key is usable (access control is then enforced).
-- (no parameters)
SELECT EXISTS (SELECT 1 FROM api_key WHERE revoked_at IS NULL)
