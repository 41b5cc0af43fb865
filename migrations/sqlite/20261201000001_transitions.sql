-- Every status change of a job, written by the database itself (not by the application), so a
-- test or an operator can prove from the log that a job went queued -> running -> succeeded once.
-- `attempt` is the row's attempt counter after the change (the fencing token of the run).
CREATE TABLE job_transitions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL,
    from_status TEXT NOT NULL,
    to_status TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    at TEXT NOT NULL
);

CREATE INDEX job_transitions_by_job ON job_transitions (job_id, id);

CREATE TRIGGER job_status_changed AFTER UPDATE OF status ON sentiq_jobs
WHEN OLD.status <> NEW.status
BEGIN
    INSERT INTO job_transitions (job_id, from_status, to_status, attempt, at)
    VALUES (NEW.id, OLD.status, NEW.status, NEW.attempts, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));
END;
