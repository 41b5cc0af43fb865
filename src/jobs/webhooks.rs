//! The webhook outbox, `webhook_deliveries`: one row per event to deliver, written by the
//! database when a job with a `webhook_url` becomes final (see the `*_webhooks.sql` migrations).
//!
//! A delivery is `pending` until it ends `delivered` (a 2xx), `stopped` (the receiver answered
//! 410 Gone) or `failed` (the retry schedule ran out). Attempts are leased: a claim sets
//! `leased_until` and adds one to `attempts`, which is the attempt's fencing token, as a job's
//! `attempts` is its run's. An outcome is recorded only while the row is pending under that
//! token, so an attempt that lost its lease (its worker stalled past it, and another worker
//! took the row over) writes nothing. Every change of a delivery also moves its job's `version`,
//! the ETag of the job's JSON, which shows the delivery.
//!
//! Only the job store calls the writers; the status JSON and the dashboard read.

use serde::Serialize;
use sqlx::FromRow;

use super::model::{JobRow, JobView, now};
use crate::db::Db;
use crate::on_db;
use crate::timestamp::Timestamp;

/// Where a delivery is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = WebhookStatus)]
pub enum DeliveryStatus {
    /// Waiting for the job to end, or for its next attempt.
    Pending,
    /// A receiver answered 2xx.
    Delivered,
    /// The retry schedule ran out without a 2xx.
    Failed,
    /// The receiver answered 410 Gone: no further attempt.
    Stopped,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Stopped => "stopped",
        }
    }
}

impl std::fmt::Display for DeliveryStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for DeliveryStatus {
    type Err = crate::db::UnknownValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "pending" => DeliveryStatus::Pending,
            "delivered" => DeliveryStatus::Delivered,
            "failed" => DeliveryStatus::Failed,
            "stopped" => DeliveryStatus::Stopped,
            _ => {
                return Err(crate::db::UnknownValue {
                    kind: "delivery status",
                    value: s.to_owned(),
                });
            }
        })
    }
}

crate::text_column!(DeliveryStatus);

/// A delivery row.
#[derive(Clone, Debug, FromRow)]
pub struct Delivery {
    /// `msg_` and 32 hex digits: the `webhook-id` header, the same on every attempt.
    pub id: String,
    pub job_id: String,
    /// `job.succeeded`, `job.failed` or `job.cancelled`.
    pub event: String,
    pub url: String,
    pub status: DeliveryStatus,
    /// Attempts started: the fencing token of the latest.
    pub attempts: i64,
    /// `attempts` when an operator last sent it again: the schedule counts from there.
    pub attempts_base: i64,
    pub next_attempt_at: Option<Timestamp>,
    pub last_attempt_at: Option<Timestamp>,
    /// The HTTP status of the last answer (None: no answer, or no attempt yet).
    pub last_status: Option<i64>,
    /// Why the last attempt did not deliver, for the operator.
    pub last_error: Option<String>,
    pub delivered_at: Option<Timestamp>,
    /// When the job became final: the event's time.
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// The columns of [`Delivery`], as a literal so queries stay `&'static str`.
macro_rules! columns {
    () => {
        "id, job_id, event, url, status, attempts, attempts_base, next_attempt_at, \
         last_attempt_at, last_status, last_error, delivered_at, created_at, updated_at"
    };
}

impl Delivery {
    /// Failed attempts since it was created or last sent again: the step of the retry schedule
    /// that comes next.
    pub fn failures(&self) -> i64 {
        self.attempts - self.attempts_base
    }

    /// How the job's JSON shows it.
    pub fn view(&self) -> WebhookView {
        WebhookView {
            url: self.url.clone(),
            status: self.status,
            attempts: self.attempts.max(0) as u64,
            last_status: self.last_status.and_then(|s| u16::try_from(s).ok()),
            delivered_at: self.delivered_at,
            next_attempt_at: self.next_attempt_at,
        }
    }
}

/// The `webhook` of a job's JSON: its completion event's delivery. Null for a job submitted
/// without a `webhook_url`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = JobWebhook)]
pub struct WebhookView {
    /// Where the event is POSTed.
    #[schema(format = "uri")]
    pub url: String,
    /// `pending` until the job is final and the event delivered (`delivered`), refused for
    /// good with 410 Gone (`stopped`) or given up after the retry schedule (`failed`).
    pub status: DeliveryStatus,
    /// Attempts made so far (an attempt in progress included).
    pub attempts: u64,
    /// The HTTP status the receiver answered the last attempt with; null before any answer
    /// (no attempt yet, a time-out, a refused connection).
    #[schema(required = true)]
    pub last_status: Option<u16>,
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub delivered_at: Option<Timestamp>,
    /// When the next attempt is due (pending only; null while the job is not final).
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub next_attempt_at: Option<Timestamp>,
}

impl WebhookView {
    /// A job with a webhook that is not final yet: nothing to deliver so far.
    pub fn waiting(url: &str) -> WebhookView {
        WebhookView {
            url: url.to_owned(),
            status: DeliveryStatus::Pending,
            attempts: 0,
            last_status: None,
            delivered_at: None,
            next_attempt_at: None,
        }
    }
}

/// The job's JSON with its webhook's latest delivery (read only for a final job with a
/// webhook). An operator's retry of a final job makes a new delivery when it ends again; the
/// latest is shown.
pub async fn job_view(db: &Db, job: &JobRow) -> Result<JobView, sqlx::Error> {
    let mut views = job_views(db, std::slice::from_ref(job)).await?;
    Ok(views.pop().expect("one view per job"))
}

/// The job JSON of each of `jobs` (one, or a page of a listing), in order, with the latest
/// deliveries of all of them read in one query instead of one per job.
pub async fn job_views(db: &Db, jobs: &[JobRow]) -> Result<Vec<JobView>, sqlx::Error> {
    let with_delivery: Vec<&str> = jobs
        .iter()
        .filter(|job| job.webhook_url.is_some() && job.status.is_final())
        .map(|job| job.id.as_str())
        .collect();
    let mut latest = latest_for_jobs(db, &with_delivery).await?;
    Ok(jobs
        .iter()
        .map(|job| {
            let mut view = job.view();
            if let Some(delivery) = latest.remove(&job.id) {
                view.webhook = Some(delivery.view());
            }
            view
        })
        .collect())
}

/// The latest delivery of each of `job_ids` that has one, by job id: the same row
/// [`latest_for_job`] reads for each.
async fn latest_for_jobs(
    db: &Db,
    job_ids: &[&str],
) -> Result<std::collections::HashMap<String, Delivery>, sqlx::Error> {
    if job_ids.is_empty() {
        return Ok(Default::default());
    }
    // The newest row per job: ranked within each job in the order `latest_for_job` sorts by.
    macro_rules! newest_of {
        ($ids:expr) => {
            concat!(
                "SELECT ",
                columns!(),
                " FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY job_id \
                 ORDER BY created_at DESC, id DESC) AS newest FROM webhook_deliveries \
                 WHERE job_id ",
                $ids,
                ") AS d WHERE newest = 1"
            )
        };
    }
    let deliveries: Vec<Delivery> = match db {
        Db::Postgres(pool) => {
            sqlx::query_as(newest_of!("= ANY($1)"))
                .bind(job_ids)
                .fetch_all(pool)
                .await?
        }
        Db::Sqlite(pool) => {
            let ids = serde_json::to_string(job_ids).expect("strings serialise");
            sqlx::query_as(newest_of!("IN (SELECT value FROM json_each($1))"))
                .bind(ids)
                .fetch_all(pool)
                .await?
        }
    };
    Ok(deliveries
        .into_iter()
        .map(|d| (d.job_id.clone(), d))
        .collect())
}

/// The latest delivery of a job's events.
pub async fn latest_for_job(db: &Db, job_id: &str) -> Result<Option<Delivery>, sqlx::Error> {
    on_db!(db, |pool| {
        sqlx::query_as::<_, Delivery>(concat!(
            "SELECT ",
            columns!(),
            " FROM webhook_deliveries WHERE job_id = $1 \
             ORDER BY created_at DESC, id DESC LIMIT 1"
        ))
        .bind(job_id)
        .fetch_optional(pool)
        .await
    })
}

/// Deliveries whose last attempt failed (retrying, failed or stopped), latest change first,
/// through the partial index `webhook_deliveries_failing`.
pub async fn failing(db: &Db, limit: i64) -> Result<Vec<Delivery>, sqlx::Error> {
    on_db!(db, |pool| {
        sqlx::query_as::<_, Delivery>(concat!(
            "SELECT ",
            columns!(),
            " FROM webhook_deliveries WHERE status <> 'delivered' AND last_error IS NOT NULL \
             ORDER BY updated_at DESC, id LIMIT $1"
        ))
        .bind(limit)
        .fetch_all(pool)
        .await
    })
}

/// Pending deliveries (for `/metrics`), through the partial index `webhook_deliveries_due`.
pub async fn pending_count(db: &Db) -> Result<i64, sqlx::Error> {
    on_db!(db, |pool| {
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'pending' \
             AND next_attempt_at IS NOT NULL",
        )
        .fetch_one(pool)
        .await
    })
}

/// Whether any delivery is due now (a read, so an idle poll never takes SQLite's write lock).
const ANY_DUE: &str = "SELECT id FROM webhook_deliveries WHERE status = 'pending' \
     AND next_attempt_at <= $1 AND (leased_until IS NULL OR leased_until < $1) LIMIT 1";

/// The text of the claim statement, with a locking clause for the inner select.
macro_rules! claim {
    ($lock:literal) => {
        concat!(
            "UPDATE webhook_deliveries SET attempts = attempts + 1, leased_until = $2 \
             WHERE id IN (SELECT id FROM webhook_deliveries WHERE status = 'pending' \
             AND next_attempt_at <= $1 AND (leased_until IS NULL OR leased_until < $1) \
             ORDER BY next_attempt_at LIMIT $3",
            $lock,
            ") AND status = 'pending' AND (leased_until IS NULL OR leased_until < $1) \
             RETURNING ",
            columns!()
        )
    };
}

/// Moves the `version` of the jobs of changed deliveries (`$1`: their ids).
const BUMP_JOBS: &str = "UPDATE sentiq_jobs SET version = version + 1 WHERE id IN \
     (SELECT job_id FROM webhook_deliveries WHERE id = $1)";

/// Lease up to `limit` due deliveries until `leased_until`, adding one to their attempts. The
/// conditions are repeated outside the inner select, so a row another claimer leased in between
/// is not taken twice; on PostgreSQL the inner select also skips rows being claimed.
pub async fn claim_due(
    db: &Db,
    limit: i64,
    leased_until: Timestamp,
) -> Result<Vec<Delivery>, sqlx::Error> {
    let now = now();
    let due: Option<String> = on_db!(db, |pool| {
        sqlx::query_scalar(ANY_DUE)
            .bind(&now)
            .fetch_optional(pool)
            .await?
    });
    if due.is_none() {
        return Ok(Vec::new());
    }
    let _write = db.write_permit().await;
    let claim = match db {
        Db::Sqlite(_) => claim!(""),
        Db::Postgres(_) => claim!(" FOR UPDATE SKIP LOCKED"),
    };
    on_db!(db, |pool| {
        let mut tx = pool.begin().await?;
        let claimed = sqlx::query_as::<_, Delivery>(claim)
            .bind(&now)
            .bind(leased_until.to_string())
            .bind(limit)
            .fetch_all(&mut *tx)
            .await?;
        for d in &claimed {
            sqlx::query(BUMP_JOBS).bind(&d.id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(claimed)
    })
}

/// How one attempt ended, to be recorded.
#[derive(Clone, Debug)]
pub struct Attempted {
    pub id: String,
    /// The attempt's fencing token (the row's `attempts` when it was claimed).
    pub attempt: i64,
    /// The row's new status.
    pub status: DeliveryStatus,
    /// When to try again (pending only).
    pub next_attempt_at: Option<Timestamp>,
    /// The answer's HTTP status, if there was one.
    pub http_status: Option<u16>,
    /// Why it did not deliver (None when delivered).
    pub error: Option<String>,
}

const RECORD: &str = "UPDATE webhook_deliveries SET status = $1, next_attempt_at = $2, \
     leased_until = NULL, last_attempt_at = $3, last_status = $4, last_error = $5, \
     delivered_at = CASE WHEN $1 = 'delivered' THEN $3 END, updated_at = $3 \
     WHERE id = $6 AND attempts = $7 AND status = 'pending'";

/// Record an attempt's outcome and move its job's version. False (nothing written) when the
/// attempt no longer owns the row: its lease ran out and another attempt was started.
pub async fn record(db: &Db, a: &Attempted) -> Result<bool, sqlx::Error> {
    let _write = db.write_permit().await;
    let now = now();
    on_db!(db, |pool| {
        let mut tx = pool.begin().await?;
        let applied = sqlx::query(RECORD)
            .bind(a.status.as_str())
            .bind(a.next_attempt_at.map(|t| t.to_string()))
            .bind(&now)
            .bind(a.http_status.map(i64::from))
            .bind(&a.error)
            .bind(&a.id)
            .bind(a.attempt)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
        if applied {
            sqlx::query(BUMP_JOBS).bind(&a.id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(applied)
    })
}

const SEND_AGAIN: &str = concat!(
    "UPDATE webhook_deliveries SET status = 'pending', attempts_base = attempts, \
     next_attempt_at = $1, updated_at = $1 WHERE id = $2 AND status <> 'delivered' \
     AND (leased_until IS NULL OR leased_until < $1) RETURNING ",
    columns!()
);

/// An operator's "Send again": a delivery that is not delivered and has no attempt in flight is
/// due now, with the whole retry schedule ahead of it. None when there is no such delivery.
pub async fn send_again(db: &Db, id: &str) -> Result<Option<Delivery>, sqlx::Error> {
    let _write = db.write_permit().await;
    let now = now();
    on_db!(db, |pool| {
        let mut tx = pool.begin().await?;
        let row = sqlx::query_as::<_, Delivery>(SEND_AGAIN)
            .bind(&now)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        if row.is_some() {
            sqlx::query(BUMP_JOBS).bind(id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(row)
    })
}

/// A delivery by id.
pub async fn get(db: &Db, id: &str) -> Result<Option<Delivery>, sqlx::Error> {
    on_db!(db, |pool| {
        sqlx::query_as::<_, Delivery>(concat!(
            "SELECT ",
            columns!(),
            " FROM webhook_deliveries WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(pool)
        .await
    })
}
