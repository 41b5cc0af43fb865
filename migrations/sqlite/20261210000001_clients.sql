-- Clients (issue 22): API keys, and the key each job was submitted with.
--
-- 1. One row per API key. The key itself (`sq_` and 43 characters of base64url) is shown once,
--    when it is made, and never stored: `hash` is the SHA-256 of the whole key, which cannot be
--    sent back to authenticate. A request's key is found by its `prefix` (the first characters
--    after `sq_`, public: lists show it so an operator can tell keys apart) and then its hash is
--    compared in constant time. Keys are revoked (`revoked_at`), never deleted, so the jobs that
--    name them keep an owner. `last_used_at` is refreshed about once a minute per web process,
--    not on every request. `rate_per_minute` and `max_running` are the key's own limits (NULL:
--    the server's defaults).
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    hash BLOB NOT NULL,
    created_at TEXT NOT NULL,
    last_used_at TEXT,
    revoked_at TEXT,
    rate_per_minute INTEGER,
    max_running INTEGER
);

-- The look-up of every authenticated request; unique, so a prefix names one key (a new key whose
-- random prefix is taken already is drawn again).
CREATE UNIQUE INDEX api_keys_by_prefix ON api_keys (prefix);

-- 2. The key a job was submitted with (NULL: the browser form, or an anonymous request). No
--    foreign key: keys are never deleted, and the check would cost every submission a look-up.
ALTER TABLE sentiq_jobs ADD COLUMN api_key_id TEXT;

-- 3. A client's own jobs, newest first (`GET /api/jobs`, the form's recent jobs): keyset
--    pagination on (created_at, id), so each owner's index ends in both, in the listing's order.
CREATE INDEX jobs_by_api_key ON sentiq_jobs (api_key_id, created_at DESC, id DESC)
    WHERE api_key_id IS NOT NULL;
DROP INDEX jobs_by_visitor;
CREATE INDEX jobs_by_visitor ON sentiq_jobs (visitor, created_at DESC, id DESC)
    WHERE visitor IS NOT NULL;
