-- Signed completion webhooks (Standard Webhooks v1): the URL a job's final state is POSTed to,
-- and the outbox of deliveries (the same schema as migrations/sqlite).
--
-- A delivery row is written by the database itself, in the statement (hence the transaction)
-- that makes a job with a `webhook_url` final, whichever code path does it: a worker's finish or
-- failure (the group-committed `FINISH_MANY` included), a cancel, an operator's action. So a
-- delivery is never lost and never made for a job that is not final. An operator's retry of such
-- a job makes a new delivery when it ends again.
ALTER TABLE sentiq_jobs ADD COLUMN webhook_url TEXT;

-- One event to deliver. `id` is the `webhook-id` header, the same on every attempt. `attempts`
-- counts the attempts started (a claim adds one) and is the fencing token of an attempt: its
-- outcome is recorded only while the row still has that count. `attempts_base` is `attempts` when
-- an operator last sent it again (the retry schedule counts from there). `leased_until`: an
-- attempt in flight; another worker takes the row over only once that time has passed.
CREATE TABLE webhook_deliveries (
    id TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    job_id TEXT COLLATE "C" NOT NULL REFERENCES sentiq_jobs (id) ON DELETE CASCADE,
    event TEXT NOT NULL CHECK (event IN ('job.succeeded', 'job.failed', 'job.cancelled')),
    url TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'delivered', 'failed', 'stopped')),
    attempts BIGINT NOT NULL DEFAULT 0,
    attempts_base BIGINT NOT NULL DEFAULT 0,
    next_attempt_at TEXT COLLATE "C",
    leased_until TEXT COLLATE "C",
    last_attempt_at TEXT COLLATE "C",
    last_status BIGINT,
    last_error TEXT,
    delivered_at TEXT COLLATE "C",
    created_at TEXT COLLATE "C" NOT NULL,
    updated_at TEXT COLLATE "C" NOT NULL
);

CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_by_job ON webhook_deliveries (job_id, created_at);
CREATE INDEX webhook_deliveries_failing ON webhook_deliveries (updated_at)
    WHERE status <> 'delivered' AND last_error IS NOT NULL;

CREATE FUNCTION sentiq_enqueue_webhook() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO webhook_deliveries (id, job_id, event, url, next_attempt_at, created_at, updated_at)
    VALUES ('msg_' || replace(gen_random_uuid()::text, '-', ''), NEW.id, 'job.' || NEW.status,
            NEW.webhook_url, NEW.finished_at, NEW.finished_at, NEW.finished_at);
    RETURN NULL;
END;
$$;

-- A row trigger whose condition is checked without calling the function: jobs without a webhook
-- (nearly all of them, in a batch of a worker's finishes) cost no insert and no SPI call.
CREATE TRIGGER job_final_webhook AFTER UPDATE OF status ON sentiq_jobs
FOR EACH ROW WHEN (NEW.webhook_url IS NOT NULL AND OLD.status IS DISTINCT FROM NEW.status
    AND NEW.status IN ('succeeded', 'failed', 'cancelled'))
EXECUTE FUNCTION sentiq_enqueue_webhook();
