-- The index on (status, updated_at) split in two partial indexes, for open and for finished
-- jobs, as on PostgreSQL (see migrations/postgres/20261204000001_cheaper_job_writes.sql): the
-- per-job writes, which find their rows by primary key and also test the status, cannot pick
-- an index range that holds every job that ever had that status. Queries that want the open
-- jobs say `finished_at IS NULL`; those that want finished ones imply `finished_at IS NOT NULL`.
DROP INDEX jobs_by_status;
CREATE INDEX jobs_open ON sentiq_jobs (status, updated_at) WHERE finished_at IS NULL;
CREATE INDEX jobs_finished ON sentiq_jobs (status, updated_at) WHERE finished_at IS NOT NULL;
