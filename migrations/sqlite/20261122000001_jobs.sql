-- The table is `sentiq_jobs`, not `jobs`: SQLite table names ignore case and apalis-sqlite owns `Jobs`.
-- One row per submitted analysis. Every change bumps `version` (the ETag of the status endpoint);
-- status transitions are conditional updates on (id, status).
CREATE TABLE sentiq_jobs (
    id TEXT PRIMARY KEY NOT NULL,
    visitor TEXT,
    queue TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'queued'
        CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    format TEXT NOT NULL,
    column_name TEXT,
    input_bytes INTEGER NOT NULL,
    title TEXT NOT NULL DEFAULT '',
    progress_done INTEGER NOT NULL DEFAULT 0,
    progress_total INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    version INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    updated_at TEXT NOT NULL,
    error_code TEXT,
    error_message TEXT,
    result TEXT
);

CREATE INDEX jobs_by_visitor ON sentiq_jobs (visitor, created_at DESC) WHERE visitor IS NOT NULL;
CREATE INDEX jobs_by_status ON sentiq_jobs (status, updated_at);

-- The submitted input, as received (text, CSV, JSONL, or the JSON of a batch of documents).
CREATE TABLE job_inputs (
    job_id TEXT PRIMARY KEY NOT NULL REFERENCES sentiq_jobs (id) ON DELETE CASCADE,
    body BLOB NOT NULL
);

-- Per-item scores of a job, for download.
CREATE TABLE job_items (
    job_id TEXT NOT NULL REFERENCES sentiq_jobs (id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    item_id TEXT,
    text TEXT NOT NULL,
    neg REAL NOT NULL,
    neu REAL NOT NULL,
    pos REAL NOT NULL,
    compound REAL NOT NULL,
    PRIMARY KEY (job_id, position)
) WITHOUT ROWID;
