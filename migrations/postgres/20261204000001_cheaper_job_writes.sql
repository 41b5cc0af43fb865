-- 1. The index on (status, updated_at) is split in two partial indexes, for open and for finished
--    jobs, by a column that the per-job writes never test. Those writes find their rows by
--    primary key (`id = ANY($1) AND status = 'queued'`, and the like), but the planner could also
--    use the status index for the `status = ...` part, and on a table without statistics (new,
--    or with autovacuum off, as on the CI machine) it estimates any status at 0.5 % of the rows
--    and does so. That index range holds an entry for every version of every job that ever had
--    the status until VACUUM removes the dead ones: each 256-job claim read all of them (71,000
--    entries after 71,000 jobs, 90 ms a claim), so the claims grew slower with every job run.
--    Every query that wants the open or the finished jobs says `finished_at IS NULL` or implies
--    `finished_at IS NOT NULL`; the constraint keeps that equivalent to the status.
ALTER TABLE sentiq_jobs ADD CONSTRAINT jobs_finished_when_final
    CHECK ((finished_at IS NULL) = (status IN ('queued', 'running')));
DROP INDEX jobs_by_status;
CREATE INDEX jobs_open ON sentiq_jobs (status, updated_at) WHERE finished_at IS NULL;
CREATE INDEX jobs_finished ON sentiq_jobs (status, updated_at) WHERE finished_at IS NOT NULL;

-- Two per-row costs of the worker's batched writes, measured with one `serve` and one `worker`
-- offered 3,000 jobs/s for 10 s (CPU of the PostgreSQL backends serving the worker, for the
-- 30,000 jobs; single runs on a noisy 2-core machine): 14.4 s with the row trigger and the
-- foreign keys, 9.6 s with the statement trigger below, 5.7 s with it and no foreign keys,
-- 4.8 s with no trigger and no foreign keys.
--
-- 2. The transition log is written once per statement, not once per row: a row trigger runs
--    its INSERT through SPI for every row of a 256-row claim or finish. The statement trigger
--    pairs the old and new versions of the rows the statement changed (an UPDATE changes a row
--    at most once, so `id` pairs them) and logs those whose status changed, as before.
DROP TRIGGER job_status_changed ON sentiq_jobs;
DROP FUNCTION sentiq_log_transition();

CREATE FUNCTION sentiq_log_transitions() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO job_transitions (job_id, from_status, to_status, attempt, at)
    SELECT n.id, o.status, n.status, n.attempts,
           to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
    FROM new_rows n JOIN old_rows o ON o.id = n.id
    WHERE o.status IS DISTINCT FROM n.status
    ORDER BY n.id;
    RETURN NULL;
END;
$$;

-- A trigger with transition tables cannot name columns (`UPDATE OF status`), so it fires for
-- every UPDATE statement; one that changes no status inserts nothing.
CREATE TRIGGER job_status_changed AFTER UPDATE ON sentiq_jobs
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION sentiq_log_transitions();

-- 3. No foreign key from job_items to sentiq_jobs. Its check is one SPI query and one row lock
--    on the job per item inserted (two per one-sentence job, 100,000 for a 100,000-line file),
--    and it protected nothing the writes do not already guarantee: every item insert is part of
--    a statement that requires the job's row to be running under the writer's attempt (the
--    finish CTE, the fenced inserter of large jobs), and jobs are never deleted by the
--    application. job_inputs keeps its key (one check per submission).
ALTER TABLE job_items DROP CONSTRAINT job_items_job_id_fkey;
