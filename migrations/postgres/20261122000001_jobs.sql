-- The same schema as migrations/sqlite, so one set of queries and one row type serve both
-- dialects: timestamps are RFC 3339 UTC text with milliseconds written by the application
-- (byte order = time order, hence COLLATE "C"), integers are BIGINT (Rust i64), the report is
-- JSON text. Every change bumps `version` (the ETag of the status endpoint); status transitions
-- are conditional updates on (id, status, attempts).
CREATE TABLE sentiq_jobs (
    id TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    visitor TEXT COLLATE "C",
    queue TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'queued'
        CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    format TEXT NOT NULL,
    column_name TEXT,
    input_bytes BIGINT NOT NULL,
    title TEXT NOT NULL DEFAULT '',
    progress_done BIGINT NOT NULL DEFAULT 0,
    progress_total BIGINT NOT NULL DEFAULT 0,
    attempts BIGINT NOT NULL DEFAULT 0,
    version BIGINT NOT NULL DEFAULT 1,
    created_at TEXT COLLATE "C" NOT NULL,
    started_at TEXT COLLATE "C",
    finished_at TEXT COLLATE "C",
    updated_at TEXT COLLATE "C" NOT NULL,
    error_code TEXT,
    error_message TEXT,
    result TEXT
);

CREATE INDEX jobs_by_visitor ON sentiq_jobs (visitor, created_at DESC) WHERE visitor IS NOT NULL;
CREATE INDEX jobs_by_status ON sentiq_jobs (status, updated_at);

-- The submitted input, as received (text, CSV, JSONL, or the JSON of a batch of documents).
CREATE TABLE job_inputs (
    job_id TEXT COLLATE "C" PRIMARY KEY NOT NULL REFERENCES sentiq_jobs (id) ON DELETE CASCADE,
    body BYTEA NOT NULL
);

-- Per-item scores of a job, for download.
CREATE TABLE job_items (
    job_id TEXT COLLATE "C" NOT NULL REFERENCES sentiq_jobs (id) ON DELETE CASCADE,
    position BIGINT NOT NULL,
    item_id TEXT,
    text TEXT NOT NULL,
    neg DOUBLE PRECISION NOT NULL,
    neu DOUBLE PRECISION NOT NULL,
    pos DOUBLE PRECISION NOT NULL,
    compound DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (job_id, position)
);
