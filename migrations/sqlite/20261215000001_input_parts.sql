-- An input larger than one part (1 MiB) is written while it arrives, a part at a time, so the web
-- process never holds a whole upload. Its parts go in before the job row exists (`staged_at`
-- lets the pruner remove the parts of an upload that never became a job); the job's
-- `job_inputs` row then says how many parts there are, with an empty body. Deleting that row
-- (the job finished, was deleted or expired) deletes its parts, whichever statement does it.
ALTER TABLE job_inputs ADD COLUMN parts INTEGER NOT NULL DEFAULT 0;

CREATE TABLE job_input_parts (
    job_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    staged_at INTEGER NOT NULL,
    body BLOB NOT NULL,
    PRIMARY KEY (job_id, seq)
);

CREATE TRIGGER input_deleted AFTER DELETE ON job_inputs WHEN OLD.parts > 0
BEGIN
    DELETE FROM job_input_parts WHERE job_id = OLD.job_id;
END;
