-- Retention, deletion and compact items (issue 21).
--
-- 1. A final job keeps its data until `expires_at` (RESULT_TTL after the final transition, set by
--    the same UPDATE; NULL: kept forever, or not final yet). The pruner then removes its input,
--    items and report, and the row stays as a tombstone (`purged_at`, `purge_reason` 'expired' or
--    'deleted') that answers 410 Gone until TOMBSTONE_TTL has passed; then the row goes too.
ALTER TABLE sentiq_jobs ADD COLUMN expires_at TEXT;
ALTER TABLE sentiq_jobs ADD COLUMN purged_at TEXT;
ALTER TABLE sentiq_jobs ADD COLUMN purge_reason TEXT CHECK (purge_reason IN ('expired', 'deleted'));

-- The pruner's two look-ups: live jobs by expiry, tombstones by age.
CREATE INDEX jobs_expiring ON sentiq_jobs (expires_at) WHERE expires_at IS NOT NULL AND purged_at IS NULL;
CREATE INDEX jobs_purged ON sentiq_jobs (purged_at) WHERE purged_at IS NOT NULL;

-- 2. Items are stored in chunks: one row per run of up to a few thousand items, encoded
--    compactly and compressed (`jobs::items`), instead of a row per item with its text, four
--    REALs and the job id (about 3x the input). Keyed by the chunk's last position, so a reader
--    resuming after position p seeks straight to the first chunk that ends after p. The rows of
--    `job_items`, if any, are converted by the application at start-up, which then drops it.
--    No foreign key: a job's chunks go with its row through the trigger below.
CREATE TABLE job_item_chunks (
    job_id TEXT NOT NULL,
    last_position INTEGER NOT NULL,
    first_position INTEGER NOT NULL,
    items INTEGER NOT NULL,
    body BLOB NOT NULL,
    PRIMARY KEY (job_id, last_position)
);

-- 3. Deleting a job row (a tombstone past TOMBSTONE_TTL, or by hand) deletes what refers to it:
--    its input goes by its foreign key, its chunks and its transition log here.
CREATE TRIGGER job_deleted AFTER DELETE ON sentiq_jobs
BEGIN
    DELETE FROM job_item_chunks WHERE job_id = OLD.id;
    DELETE FROM job_transitions WHERE job_id = OLD.id;
END;
