-- Idempotency keys of submissions (`Idempotency-Key` on `POST /api/jobs`, the browser form's
-- one-time token): written in the same transaction as the job they name, so a retried request
-- finds either nothing (and writes the job) or the committed job (and gets its answer again).
-- `scope_key` is the scope and the client's key (`api:<key>`, `form:<token>:<fingerprint>`);
-- `fingerprint` a SHA-256 of the request, to tell a retry from another request with a reused
-- key. No foreign key: the job may be pruned or deleted first; its answer stays the same.
CREATE TABLE idempotency_keys (
    scope_key TEXT PRIMARY KEY NOT NULL,
    fingerprint TEXT NOT NULL,
    job_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);

CREATE INDEX idempotency_keys_by_expiry ON idempotency_keys (expires_at);
