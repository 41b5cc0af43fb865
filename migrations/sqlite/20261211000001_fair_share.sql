-- Fair share of the workers on the embedded queue (src/jobs/fair.rs).
--
-- A key's jobs beyond its `max_running` wait as rows without a queue entry (`held`), released
-- oldest first as the key's dispatched jobs end. Only the embedded topology holds rows; with
-- Redis the owners' waiting lists do this.
ALTER TABLE sentiq_jobs ADD COLUMN held INTEGER NOT NULL DEFAULT 0;

-- Each submission counts its owner's open jobs (its priority: fewer open jobs, fetched sooner)
-- and a key's dispatched ones; every count is a range of this small index of open jobs.
CREATE INDEX jobs_open_by_owner ON sentiq_jobs (api_key_id, held, visitor) WHERE finished_at IS NULL;

-- The held jobs of a key, oldest first.
CREATE INDEX jobs_held ON sentiq_jobs (api_key_id, created_at, id) WHERE held = 1;
