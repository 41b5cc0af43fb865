-- Every status change of a job, written by the database itself (not by the application), so a
-- test or an operator can prove from the log that a job went queued -> running -> succeeded once.
-- `attempt` is the row's attempt counter after the change (the fencing token of the run).
CREATE TABLE job_transitions (
    id BIGSERIAL PRIMARY KEY,
    job_id TEXT COLLATE "C" NOT NULL,
    from_status TEXT NOT NULL,
    to_status TEXT NOT NULL,
    attempt BIGINT NOT NULL,
    at TEXT COLLATE "C" NOT NULL
);

CREATE INDEX job_transitions_by_job ON job_transitions (job_id, id);

CREATE FUNCTION sentiq_log_transition() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO job_transitions (job_id, from_status, to_status, attempt, at)
    VALUES (NEW.id, OLD.status, NEW.status, NEW.attempts,
            to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'));
    RETURN NULL;
END;
$$;

CREATE TRIGGER job_status_changed AFTER UPDATE OF status ON sentiq_jobs
FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
EXECUTE FUNCTION sentiq_log_transition();
