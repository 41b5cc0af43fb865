-- Signed completion webhooks (Standard Webhooks v1): the URL a job's final state is POSTed to,
-- and the outbox of deliveries.
--
-- A delivery row is written by the database itself, in the statement (hence the transaction)
-- that makes a job with a `webhook_url` final, whichever code path does it: a worker's finish or
-- failure, a cancel, an operator's action. So a delivery is never lost and never made for a job
-- that is not final. An operator's retry of such a job makes a new delivery when it ends again.
ALTER TABLE sentiq_jobs ADD COLUMN webhook_url TEXT;

-- One event to deliver. `id` is the `webhook-id` header, the same on every attempt. `attempts`
-- counts the attempts started (a claim adds one) and is the fencing token of an attempt: its
-- outcome is recorded only while the row still has that count. `attempts_base` is `attempts` when
-- an operator last sent it again (the retry schedule counts from there). `leased_until`: an
-- attempt in flight; another worker takes the row over only once that time has passed.
CREATE TABLE webhook_deliveries (
    id TEXT PRIMARY KEY NOT NULL,
    job_id TEXT NOT NULL REFERENCES sentiq_jobs (id) ON DELETE CASCADE,
    event TEXT NOT NULL CHECK (event IN ('job.succeeded', 'job.failed', 'job.cancelled')),
    url TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'delivered', 'failed', 'stopped')),
    attempts INTEGER NOT NULL DEFAULT 0,
    attempts_base INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,
    leased_until TEXT,
    last_attempt_at TEXT,
    last_status INTEGER,
    last_error TEXT,
    delivered_at TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_by_job ON webhook_deliveries (job_id, created_at);
CREATE INDEX webhook_deliveries_failing ON webhook_deliveries (updated_at)
    WHERE status <> 'delivered' AND last_error IS NOT NULL;

CREATE TRIGGER job_final_webhook AFTER UPDATE OF status ON sentiq_jobs
WHEN NEW.webhook_url IS NOT NULL AND OLD.status <> NEW.status
    AND NEW.status IN ('succeeded', 'failed', 'cancelled')
BEGIN
    INSERT INTO webhook_deliveries (id, job_id, event, url, next_attempt_at, created_at, updated_at)
    VALUES ('msg_' || lower(hex(randomblob(16))), NEW.id, 'job.' || NEW.status, NEW.webhook_url,
            NEW.finished_at, NEW.finished_at, NEW.finished_at);
END;
