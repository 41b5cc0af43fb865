-- Retention, deletion and compact items (issue 21); the same as migrations/sqlite.
--
-- 1. A final job keeps its data until `expires_at` (RESULT_TTL after the final transition, set by
--    the same UPDATE; NULL: kept forever, or not final yet). The pruner then removes its input,
--    items and report, and the row stays as a tombstone (`purged_at`, `purge_reason` 'expired' or
--    'deleted') that answers 410 Gone until TOMBSTONE_TTL has passed; then the row goes too.
ALTER TABLE sentiq_jobs ADD COLUMN expires_at TEXT COLLATE "C";
ALTER TABLE sentiq_jobs ADD COLUMN purged_at TEXT COLLATE "C";
ALTER TABLE sentiq_jobs ADD COLUMN purge_reason TEXT CHECK (purge_reason IN ('expired', 'deleted'));

-- The pruner's two look-ups: live jobs by expiry, tombstones by age.
CREATE INDEX jobs_expiring ON sentiq_jobs (expires_at) WHERE expires_at IS NOT NULL AND purged_at IS NULL;
CREATE INDEX jobs_purged ON sentiq_jobs (purged_at) WHERE purged_at IS NOT NULL;

-- 2. Items are stored in chunks: one row per run of up to a few thousand items, encoded
--    compactly and compressed (`jobs::items`), instead of a row per item. Keyed by the chunk's
--    last position, so a reader resuming after position p seeks straight to the first chunk that
--    ends after p. The body is compressed already: TOAST stores it out of line without trying
--    to compress it again (STORAGE EXTERNAL). The rows of `job_items`, if any, are converted by
--    the application at start-up, which then drops it.
CREATE TABLE job_item_chunks (
    job_id TEXT COLLATE "C" NOT NULL,
    last_position BIGINT NOT NULL,
    first_position BIGINT NOT NULL,
    items BIGINT NOT NULL,
    body BYTEA NOT NULL,
    PRIMARY KEY (job_id, last_position)
);
ALTER TABLE job_item_chunks ALTER COLUMN body SET STORAGE EXTERNAL;

-- 3. Deleting job rows deletes their inputs, chunks and transition logs (once per statement);
--    their webhook deliveries go by their foreign key.
CREATE OR REPLACE FUNCTION sentiq_delete_job_data() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM job_inputs WHERE job_id IN (SELECT id FROM gone);
    DELETE FROM job_item_chunks WHERE job_id IN (SELECT id FROM gone);
    DELETE FROM job_transitions WHERE job_id IN (SELECT id FROM gone);
    RETURN NULL;
END;
$$;
