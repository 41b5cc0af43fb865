//! The job row and its life: `queued → running → succeeded | failed | cancelled`.
//!
//! Every transition is one conditional `UPDATE ... WHERE id = ? AND status = ?` that reports
//! whether it applied, so a duplicate delivery can neither run a finished job again nor finish
//! a job twice, and a cancel can never be overwritten by a late success. Every change bumps
//! `version`, which is the ETag of the status endpoint.

use chrono::{SecondsFormat, Utc};
use serde::Serialize;
use sqlx::{FromRow, SqliteConnection, SqlitePool};
use uuid::Uuid;

use crate::analysis::{Format, Report};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Running => "running",
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "queued" => Status::Queued,
            "running" => Status::Running,
            "succeeded" => Status::Succeeded,
            "failed" => Status::Failed,
            "cancelled" => Status::Cancelled,
            _ => return None,
        })
    }

    pub fn is_final(self) -> bool {
        matches!(self, Status::Succeeded | Status::Failed | Status::Cancelled)
    }
}

/// Current time as stored: RFC 3339 UTC with milliseconds (sorts as text).
pub fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A job row without its input.
#[derive(Clone, Debug, FromRow)]
pub struct JobRow {
    pub id: String,
    pub visitor: Option<String>,
    pub queue: String,
    pub status: String,
    pub format: String,
    pub column_name: Option<String>,
    pub input_bytes: i64,
    pub title: String,
    pub progress_done: i64,
    pub progress_total: i64,
    pub attempts: i64,
    pub version: i64,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub updated_at: String,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub result: Option<String>,
}

/// The columns of [`JobRow`], as a literal so queries stay `&'static str`.
macro_rules! columns {
    () => {
        "id, visitor, queue, status, format, column_name, input_bytes, title, \
         progress_done, progress_total, attempts, version, created_at, started_at, finished_at, \
         updated_at, error_code, error_message, result"
    };
}

impl JobRow {
    pub fn status(&self) -> Status {
        Status::parse(&self.status).unwrap_or(Status::Failed)
    }

    pub fn format(&self) -> Format {
        match self.format.as_str() {
            "csv" => Format::Csv,
            "jsonl" => Format::Jsonl,
            "documents" => Format::Documents,
            _ => Format::Text,
        }
    }

    /// The stored report of a succeeded job.
    pub fn report(&self) -> Option<Report> {
        self.result
            .as_deref()
            .and_then(|r| serde_json::from_str(r).ok())
    }

    /// ETag of the status representation.
    pub fn etag(&self) -> String {
        format!("\"{}-{}\"", self.id, self.version)
    }

    /// The JSON of `GET /api/jobs/{id}`.
    pub fn view(&self) -> JobView {
        JobView {
            id: self.id.clone(),
            status: self.status(),
            queue: self.queue.clone(),
            progress: Progress {
                done: self.progress_done.max(0) as u64,
                total: self.progress_total.max(0) as u64,
            },
            attempts: self.attempts.max(0) as u64,
            created_at: self.created_at.clone(),
            started_at: self.started_at.clone(),
            finished_at: self.finished_at.clone(),
            error: self.error_code.as_ref().map(|code| ErrorInfo {
                code: code.clone(),
                message: self.error_message.clone().unwrap_or_default(),
            }),
            result: self
                .result
                .as_deref()
                .and_then(|r| serde_json::from_str(r).ok()),
        }
    }

    /// Progress as a fraction in [0, 1].
    pub fn fraction(&self) -> f64 {
        if self.status() == Status::Succeeded {
            return 1.0;
        }
        if self.progress_total <= 0 {
            return 0.0;
        }
        (self.progress_done as f64 / self.progress_total as f64).clamp(0.0, 1.0)
    }
}

#[derive(Debug, Serialize)]
pub struct Progress {
    pub done: u64,
    pub total: u64,
}

#[derive(Debug, Serialize)]
pub struct ErrorInfo {
    pub code: String,
    pub message: String,
}

#[derive(Debug, Serialize)]
pub struct JobView {
    pub id: String,
    pub status: Status,
    pub queue: String,
    pub progress: Progress,
    pub attempts: u64,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub error: Option<ErrorInfo>,
    pub result: Option<serde_json::Value>,
}

/// What a submission stores.
#[derive(Clone, Debug)]
pub struct NewJob {
    pub id: Uuid,
    pub visitor: Option<String>,
    pub queue: &'static str,
    pub format: Format,
    pub column: Option<String>,
    pub title: String,
    pub input: Vec<u8>,
}

pub fn format_name(format: Format) -> &'static str {
    match format {
        Format::Text => "text",
        Format::Csv => "csv",
        Format::Jsonl => "jsonl",
        Format::Documents => "documents",
    }
}

/// Insert the row and its input (inside the caller's transaction).
pub async fn insert(conn: &mut SqliteConnection, job: &NewJob) -> Result<(), sqlx::Error> {
    insert_many(conn, &[job]).await
}

/// Rows per multi-row INSERT of new jobs (10 parameters each, under SQLite's variable limit).
const JOBS_PER_STATEMENT: usize = 64;

/// Insert several rows and their inputs (inside the caller's transaction) with multi-row
/// statements: one round trip to SQLite's connection thread per table, not per job.
pub async fn insert_many(conn: &mut SqliteConnection, jobs: &[&NewJob]) -> Result<(), sqlx::Error> {
    let now = now();
    for chunk in jobs.chunks(JOBS_PER_STATEMENT) {
        let mut rows = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "INSERT INTO sentiq_jobs (id, visitor, queue, status, format, column_name, \
             input_bytes, title, progress_total, created_at, updated_at) ",
        );
        rows.push_values(chunk, |mut b, job| {
            b.push_bind(job.id.to_string())
                .push_bind(&job.visitor)
                .push_bind(job.queue)
                .push_bind("queued")
                .push_bind(format_name(job.format))
                .push_bind(&job.column)
                .push_bind(job.input.len() as i64)
                .push_bind(&job.title)
                .push_bind(job.input.len() as i64)
                .push_bind(&now)
                .push_bind(&now);
        });
        rows.build().execute(&mut *conn).await?;
        let mut inputs =
            sqlx::QueryBuilder::<sqlx::Sqlite>::new("INSERT INTO job_inputs (job_id, body) ");
        inputs.push_values(chunk, |mut b, job| {
            b.push_bind(job.id.to_string()).push_bind(&job.input);
        });
        inputs.build().execute(&mut *conn).await?;
    }
    Ok(())
}

pub async fn get(pool: &SqlitePool, id: &str) -> Result<Option<JobRow>, sqlx::Error> {
    sqlx::query_as::<_, JobRow>(concat!(
        "SELECT ",
        columns!(),
        " FROM sentiq_jobs WHERE id = ?"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await
}

pub async fn input(pool: &SqlitePool, id: &str) -> Result<Option<Vec<u8>>, sqlx::Error> {
    sqlx::query_scalar("SELECT body FROM job_inputs WHERE job_id = ?")
        .bind(id)
        .fetch_optional(pool)
        .await
}

/// The visitor's most recent jobs, newest first.
pub async fn recent_for_visitor(
    pool: &SqlitePool,
    visitor: &str,
    limit: i64,
) -> Result<Vec<JobRow>, sqlx::Error> {
    sqlx::query_as::<_, JobRow>(concat!(
        "SELECT ",
        columns!(),
        " FROM sentiq_jobs WHERE visitor = ? ORDER BY created_at DESC, id LIMIT ?"
    ))
    .bind(visitor)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// `queued → running`, counting the attempt. Returns the claimed row (whose `attempts` is the
/// fencing token of this run), or None when the job is not queued (already running, final,
/// unknown): a duplicate delivery then does nothing.
pub async fn claim(pool: &SqlitePool, id: &str) -> Result<Option<JobRow>, sqlx::Error> {
    let _write = crate::db::write_permit().await;
    let now = now();
    sqlx::query_as::<_, JobRow>(concat!(
        "UPDATE sentiq_jobs SET status = 'running', attempts = attempts + 1, \
         started_at = COALESCE(started_at, ?1), updated_at = ?1, progress_done = 0, \
         version = version + 1 WHERE id = ?2 AND status = 'queued' RETURNING ",
        columns!()
    ))
    .bind(&now)
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// Keep the lease of a running job fresh. False when this run no longer owns the job.
pub async fn touch(pool: &SqlitePool, id: &str, attempt: i64) -> Result<bool, sqlx::Error> {
    let _write = crate::db::write_permit().await;
    let r = sqlx::query(
        "UPDATE sentiq_jobs SET updated_at = ? WHERE id = ? AND status = 'running' AND attempts = ?",
    )
    .bind(now())
    .bind(id)
    .bind(attempt)
    .execute(pool)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Record progress of a running job. False when the job is no longer running (cancelled).
pub async fn set_progress(
    pool: &SqlitePool,
    id: &str,
    attempt: i64,
    done: u64,
    total: u64,
) -> Result<bool, sqlx::Error> {
    let _write = crate::db::write_permit().await;
    let r = sqlx::query(
        "UPDATE sentiq_jobs SET progress_done = ?, progress_total = ?, updated_at = ?, \
         version = version + 1 WHERE id = ? AND status = 'running' AND attempts = ?",
    )
    .bind(done as i64)
    .bind(total as i64)
    .bind(now())
    .bind(id)
    .bind(attempt)
    .execute(pool)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// `running → succeeded` with the report. False when the row was not running any more.
pub async fn succeed(
    pool: &SqlitePool,
    id: &str,
    attempt: i64,
    report_json: &str,
) -> Result<bool, sqlx::Error> {
    let _write = crate::db::write_permit().await;
    let now = now();
    let r = sqlx::query(
        "UPDATE sentiq_jobs SET status = 'succeeded', result = ?1, progress_done = progress_total, \
         finished_at = ?2, updated_at = ?2, version = version + 1 \
         WHERE id = ?3 AND status = 'running' AND attempts = ?4",
    )
    .bind(report_json)
    .bind(&now)
    .bind(id)
    .bind(attempt)
    .execute(pool)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// `running → failed` with an error a person can read. False when the row was not running.
pub async fn fail(
    pool: &SqlitePool,
    id: &str,
    attempt: i64,
    code: &str,
    message: &str,
) -> Result<bool, sqlx::Error> {
    let _write = crate::db::write_permit().await;
    let now = now();
    let r = sqlx::query(
        "UPDATE sentiq_jobs SET status = 'failed', error_code = ?1, error_message = ?2, \
         finished_at = ?3, updated_at = ?3, version = version + 1 \
         WHERE id = ?4 AND status = 'running' AND attempts = ?5",
    )
    .bind(code)
    .bind(message)
    .bind(&now)
    .bind(id)
    .bind(attempt)
    .execute(pool)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// `running → queued` for this run's job (a retry), in the caller's transaction.
pub async fn requeue(
    conn: &mut SqliteConnection,
    id: &str,
    attempt: i64,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE sentiq_jobs SET status = 'queued', updated_at = ?, version = version + 1 \
         WHERE id = ? AND status = 'running' AND attempts = ?",
    )
    .bind(now())
    .bind(id)
    .bind(attempt)
    .execute(&mut *conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Jobs that need a new queue entry: running jobs whose lease ran out (their worker died) and
/// queued jobs without a live queue entry (the push was lost), both untouched since
/// `stale_before`. Returns (id, queue, status).
pub async fn stale(
    pool: &SqlitePool,
    stale_before: &str,
) -> Result<Vec<(String, String, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT j.id, j.queue, j.status FROM sentiq_jobs j \
         WHERE j.updated_at < ?1 AND (j.status = 'running' OR (j.status = 'queued' AND NOT EXISTS ( \
            SELECT 1 FROM Jobs q WHERE q.job_type = j.queue \
            AND CAST(q.job AS TEXT) = json_quote(j.id) \
            AND q.status IN ('Pending', 'Queued', 'Running')))) \
         ORDER BY j.updated_at LIMIT 100",
    )
    .bind(stale_before)
    .fetch_all(pool)
    .await
}

/// Hand a stale job back to the queue state (conditional on it still being stale).
pub async fn reset_stale(
    conn: &mut SqliteConnection,
    id: &str,
    stale_before: &str,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE sentiq_jobs SET status = 'queued', updated_at = ?, version = version + 1 \
         WHERE id = ? AND status IN ('queued', 'running') AND updated_at < ?",
    )
    .bind(now())
    .bind(id)
    .bind(stale_before)
    .execute(&mut *conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Outcome of a cancel request.
#[derive(Debug)]
pub enum Cancel {
    Cancelled(Box<JobRow>),
    AlreadyFinal(Box<JobRow>),
    NotFound,
}

/// `queued | running → cancelled`.
pub async fn cancel(pool: &SqlitePool, id: &str) -> Result<Cancel, sqlx::Error> {
    let _write = crate::db::write_permit().await;
    let now = now();
    let row = sqlx::query_as::<_, JobRow>(concat!(
        "UPDATE sentiq_jobs SET status = 'cancelled', finished_at = ?1, updated_at = ?1, \
         error_code = 'cancelled', error_message = 'the analysis was cancelled', \
         version = version + 1 WHERE id = ?2 AND status IN ('queued', 'running') \
         RETURNING ",
        columns!(),
        ""
    ))
    .bind(&now)
    .bind(id)
    .fetch_optional(pool)
    .await?;
    Ok(match row {
        Some(r) => Cancel::Cancelled(Box::new(r)),
        None => match get(pool, id).await? {
            Some(r) => Cancel::AlreadyFinal(Box::new(r)),
            None => Cancel::NotFound,
        },
    })
}

/// One scored item as stored.
#[derive(Clone, Debug, Serialize, FromRow)]
pub struct ItemRow {
    pub position: i64,
    #[serde(rename = "id")]
    pub item_id: Option<String>,
    pub text: String,
    pub neg: f64,
    pub neu: f64,
    pub pos: f64,
    pub compound: f64,
}

/// Rows per INSERT statement (8 parameters each, well under SQLite's variable limit).
const ITEMS_PER_STATEMENT: usize = 500;
/// Rows per transaction: short write transactions keep submissions from waiting on the lock.
const ITEMS_PER_TRANSACTION: usize = 5000;

/// Insert a batch of items, in short transactions.
pub async fn insert_items(
    pool: &SqlitePool,
    job_id: &str,
    items: &[ItemRow],
) -> Result<(), sqlx::Error> {
    for group in items.chunks(ITEMS_PER_TRANSACTION) {
        let _write = crate::db::write_permit().await;
        let mut tx = pool.begin().await?;
        for chunk in group.chunks(ITEMS_PER_STATEMENT) {
            let mut qb = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "INSERT OR REPLACE INTO job_items \
                 (job_id, position, item_id, text, neg, neu, pos, compound) ",
            );
            qb.push_values(chunk, |mut b, it| {
                b.push_bind(job_id)
                    .push_bind(it.position)
                    .push_bind(&it.item_id)
                    .push_bind(&it.text)
                    .push_bind(it.neg)
                    .push_bind(it.neu)
                    .push_bind(it.pos)
                    .push_bind(it.compound);
            });
            qb.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
    }
    Ok(())
}

pub async fn delete_items(pool: &SqlitePool, job_id: &str) -> Result<(), sqlx::Error> {
    let _write = crate::db::write_permit().await;
    sqlx::query("DELETE FROM job_items WHERE job_id = ?")
        .bind(job_id)
        .execute(pool)
        .await?;
    Ok(())
}
