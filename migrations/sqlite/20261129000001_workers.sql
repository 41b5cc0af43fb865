-- The worker registry of the operator dashboard: one row per start of a worker process (the
-- in-process worker of `serve`, every `sentiq worker`), upserted by that process every few
-- seconds. A row whose `last_seen` is older than a few beats belongs to a dead process; a clean
-- stop sets `stopped_at`. Rows unseen for a day are deleted by the live workers.
CREATE TABLE sentiq_workers (
    name TEXT PRIMARY KEY NOT NULL,
    role TEXT NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    queues TEXT NOT NULL,
    concurrency INTEGER NOT NULL,
    started_at TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    stopped_at TEXT
);

CREATE INDEX workers_by_last_seen ON sentiq_workers (last_seen);
