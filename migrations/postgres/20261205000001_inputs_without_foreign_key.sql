-- No foreign key from job_inputs to sentiq_jobs either. Every input row is written by the same
-- statement as its job row (`WITH j AS (INSERT INTO sentiq_jobs ...) INSERT INTO job_inputs
-- SELECT ... FROM j`), so the check could never fail; it cost every submission one SPI query
-- and a row lock on the job row it had just inserted.
ALTER TABLE job_inputs DROP CONSTRAINT job_inputs_job_id_fkey;

-- The keys' `ON DELETE CASCADE`, kept for whoever deletes jobs by hand: a statement that
-- deletes jobs deletes their inputs and items too, once per statement (nothing is added to the
-- writes of the application, which never deletes a job). TRUNCATE fires no trigger: truncate
-- the tables together.
CREATE FUNCTION sentiq_delete_job_data() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM job_inputs WHERE job_id IN (SELECT id FROM gone);
    DELETE FROM job_items WHERE job_id IN (SELECT id FROM gone);
    RETURN NULL;
END;
$$;

CREATE TRIGGER job_deleted AFTER DELETE ON sentiq_jobs
REFERENCING OLD TABLE AS gone
FOR EACH STATEMENT EXECUTE FUNCTION sentiq_delete_job_data();
