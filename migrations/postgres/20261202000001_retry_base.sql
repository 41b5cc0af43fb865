-- An operator's retry no longer resets `attempts` (the fencing token of a run must never be
-- reused); it moves `retry_base` up to `attempts`, and the attempt budget counts from there.
ALTER TABLE sentiq_jobs ADD COLUMN retry_base BIGINT NOT NULL DEFAULT 0;
