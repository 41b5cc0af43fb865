-- The worker registry of the operator dashboard (the same table as migrations/sqlite): one row
-- per start of a worker process (the in-process worker of `serve`, every `sentiq worker`),
-- upserted by that process every few seconds. A row whose `last_seen` is older than a few beats
-- belongs to a dead process; a clean stop sets `stopped_at`. Rows unseen for a day are deleted
-- by the live workers. Timestamps are RFC 3339 UTC text with milliseconds (COLLATE "C": byte
-- order = time order).
CREATE TABLE sentiq_workers (
    name TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    role TEXT NOT NULL,
    host TEXT NOT NULL,
    pid BIGINT NOT NULL,
    queues TEXT NOT NULL,
    concurrency BIGINT NOT NULL,
    started_at TEXT COLLATE "C" NOT NULL,
    last_seen TEXT COLLATE "C" NOT NULL,
    stopped_at TEXT COLLATE "C"
);

CREATE INDEX workers_by_last_seen ON sentiq_workers (last_seen);
