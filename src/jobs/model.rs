//! The job row and its life: `queued → running → succeeded | failed | cancelled`.
//!
//! Every transition is one conditional `UPDATE ... WHERE id = ? AND status = ?` that reports
//! whether it applied, so a duplicate delivery can neither run a finished job again nor finish
//! a job twice, and a cancel can never be overwritten by a late success. Every change bumps
//! `version`, which is the ETag of the status endpoint. The row's `attempts` counts the runs
//! started and never goes down: it is the fencing token every write of a run carries, so no two
//! runs of a job ever share one. An operator's retry gives the job a fresh budget of runs by
//! moving `retry_base` up to `attempts` instead of resetting the counter.
//!
//! Each query is written once for both dialects (see [`crate::db`]); SQLite writers take the
//! write gate first ([`Db::write_permit`]). Statements that must share a transaction with the
//! embedded queue's push take a `SqliteConnection` (`*_in` functions).

use std::time::Duration;

use serde::Serialize;
use sqlx::{FromRow, PgPool, SqliteConnection, SqlitePool};

use crate::analysis::input::{Fields, Source};
use crate::db::Db;
use crate::on_db;
use uuid::Uuid;

use super::idempotency::{self, KeyClaim};
use super::items;
use super::queue::QueueName;
use crate::analysis::{Format, Report};
use crate::timestamp::Timestamp;
pub use crate::timestamp::now;

/// Where a job is in its life: `queued → running → succeeded | failed | cancelled`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = JobStatus)]
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

    pub fn is_final(self) -> bool {
        matches!(self, Status::Succeeded | Status::Failed | Status::Cancelled)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Status {
    type Err = crate::db::UnknownValue;

    fn from_str(s: &str) -> Result<Status, Self::Err> {
        Ok(match s {
            "queued" => Status::Queued,
            "running" => Status::Running,
            "succeeded" => Status::Succeeded,
            "failed" => Status::Failed,
            "cancelled" => Status::Cancelled,
            _ => {
                return Err(crate::db::UnknownValue {
                    kind: "status",
                    value: s.to_owned(),
                });
            }
        })
    }
}

crate::text_column!(Status);
crate::text_column!(Format);

/// Why a job is a tombstone: its data expired (`RESULT_TTL`), or its owner deleted it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PurgeReason {
    Expired,
    Deleted,
}

impl PurgeReason {
    pub fn as_str(self) -> &'static str {
        match self {
            PurgeReason::Expired => "expired",
            PurgeReason::Deleted => "deleted",
        }
    }
}

impl std::str::FromStr for PurgeReason {
    type Err = crate::db::UnknownValue;

    fn from_str(s: &str) -> Result<PurgeReason, Self::Err> {
        match s {
            "expired" => Ok(PurgeReason::Expired),
            "deleted" => Ok(PurgeReason::Deleted),
            _ => Err(crate::db::UnknownValue {
                kind: "purge reason",
                value: s.to_owned(),
            }),
        }
    }
}

crate::text_column!(PurgeReason);

/// When the data of a job that becomes final at `now` expires: `ttl` later, or never (None).
///
/// The instant is stored by the UPDATE of the final transition rather than computed when read
/// from `finished_at`: the web process (which cancels) and the workers (which finish and fail)
/// may run with different `RESULT_TTL`s while a deployment rolls, or by mistake, and the date a
/// client was shown must be the one the pruner keeps. A changed `RESULT_TTL` applies to jobs
/// that become final from then on; the promise made to earlier ones stands.
pub fn expiry(now: Timestamp, ttl: Option<Duration>) -> Option<String> {
    ttl.map(|ttl| now.plus(ttl).to_string())
}

/// A job row without its input.
#[derive(Clone, Debug, FromRow)]
pub struct JobRow {
    pub id: String,
    pub visitor: Option<String>,
    pub queue: QueueName,
    pub status: Status,
    pub format: Format,
    pub column_name: Option<String>,
    /// The analysis's columns beyond the text one, as JSON ([`Fields`] without `text`).
    pub analysis_options: Option<String>,
    pub input_bytes: i64,
    pub title: String,
    pub progress_done: i64,
    pub progress_total: i64,
    pub attempts: i64,
    /// `attempts` when an operator last retried the job (0 if never): the runs of the current
    /// round are `attempts - retry_base`.
    pub retry_base: i64,
    pub version: i64,
    pub created_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub updated_at: Timestamp,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub result: Option<String>,
    /// Where the completion event is POSTed (see [`crate::webhooks`]), if anywhere.
    pub webhook_url: Option<String>,
    /// When the pruner removes the data of this final job (None: kept forever, or not final).
    pub expires_at: Option<Timestamp>,
    /// When the job became a tombstone: its input, items and report are gone.
    pub purged_at: Option<Timestamp>,
    pub purge_reason: Option<PurgeReason>,
    /// The API key the job was submitted with (its owner), if any.
    pub api_key_id: Option<String>,
}

/// The columns of [`JobRow`], as a literal so queries stay `&'static str`.
macro_rules! columns {
    () => {
        "id, visitor, queue, status, format, column_name, analysis_options, input_bytes, title, \
         progress_done, progress_total, attempts, retry_base, version, created_at, started_at, finished_at, \
         updated_at, error_code, error_message, result, webhook_url, expires_at, purged_at, \
         purge_reason, api_key_id"
    };
}

/// The latest jobs of an open status (`$1`: queued or running), `$2` at most, newest change
/// first. Open and finished jobs have an index each (`jobs_open`, `jobs_finished`), chosen by
/// `finished_at`, hence one statement for each.
pub const LATEST_OPEN_WITH_STATUS: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM sentiq_jobs WHERE status = $1 AND finished_at IS NULL \
     ORDER BY updated_at DESC, id LIMIT $2"
);
/// The same for a final status (succeeded, failed, cancelled), tombstones left out.
pub const LATEST_FINISHED_WITH_STATUS: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM sentiq_jobs WHERE status = $1 AND finished_at IS NOT NULL AND purged_at IS NULL \
     ORDER BY updated_at DESC, id LIMIT $2"
);

/// Store `items` of job `$id` as chunks ([`items::encode`]) on a connection or transaction of
/// either dialect, replacing chunks that end at the same positions (a rerun writes the same
/// items again: the analysis is deterministic).
macro_rules! insert_chunks {
    ($conn:expr, $id:expr, $items:expr) => {{
        for chunk in items::encode($items) {
            sqlx::query(INSERT_CHUNK)
                .bind($id)
                .bind(chunk.last_position)
                .bind(chunk.first_position)
                .bind(chunk.items)
                .bind(chunk.body)
                .bind(chunk.ticks)
                .execute(&mut *$conn)
                .await?;
        }
    }};
}

impl JobRow {
    /// The runs started since the job was submitted or last retried by an operator.
    pub fn runs(&self) -> i64 {
        self.attempts - self.retry_base
    }

    /// The columns the analysis reads: the text column and the others named at submission. A
    /// stored value this version cannot read counts as none (it was written by a newer one).
    pub fn fields(&self) -> Fields {
        let mut fields: Fields = self
            .analysis_options
            .as_deref()
            .and_then(|o| serde_json::from_str(o).ok())
            .unwrap_or_default();
        fields.text = self.column_name.clone();
        fields
    }

    /// The stored report of a succeeded job.
    pub fn report(&self) -> Option<Report> {
        self.result
            .as_deref()
            .and_then(|r| serde_json::from_str(r).ok())
    }

    /// Why the job is a tombstone (its data was removed), if it is one.
    pub fn purged(&self) -> Option<PurgeReason> {
        self.purged_at
            .map(|_| self.purge_reason.unwrap_or(PurgeReason::Expired))
    }

    /// ETag of the status representation.
    pub fn etag(&self) -> String {
        format!("\"{}-{}\"", self.id, self.version)
    }

    /// The JSON of `GET /api/jobs/{id}`.
    pub fn view(&self) -> JobView {
        JobView {
            id: self.id.clone(),
            status: self.status,
            queue: self.queue,
            progress: Progress {
                done: self.progress_done.max(0) as u64,
                total: self.progress_total.max(0) as u64,
            },
            attempts: self.runs().max(0) as u64,
            created_at: self.created_at,
            started_at: self.started_at,
            finished_at: self.finished_at,
            error: self.error_code.as_ref().map(|code| ErrorInfo {
                code: code.clone(),
                message: self.error_message.clone().unwrap_or_default(),
            }),
            result: self
                .result
                .as_deref()
                .and_then(|r| serde_json::from_str(r).ok()),
            webhook: self
                .webhook_url
                .as_deref()
                .map(super::webhooks::WebhookView::waiting),
            expires_at: self.expires_at,
        }
    }

    /// Progress as a fraction in [0, 1].
    pub fn fraction(&self) -> f64 {
        if self.status == Status::Succeeded {
            return 1.0;
        }
        if self.progress_total <= 0 {
            return 0.0;
        }
        (self.progress_done as f64 / self.progress_total as f64).clamp(0.0, 1.0)
    }
}

/// Items scored so far out of the items found so far.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Progress {
    pub done: u64,
    pub total: u64,
}

/// Why a job failed or was cancelled.
#[derive(Debug, Serialize)]
pub struct ErrorInfo {
    pub code: String,
    pub message: String,
}

/// A job as the API shows it: `GET /api/jobs/{id}`, `POST /api/jobs/{id}/cancel` and each
/// event of the stream. The one definition of the job's JSON and of its OpenAPI schema.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Job)]
pub struct JobView {
    #[schema(format = "uuid")]
    pub id: String,
    pub status: Status,
    pub queue: QueueName,
    pub progress: Progress,
    /// Runs started so far (since submission, or an operator's last retry).
    pub attempts: u64,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub started_at: Option<Timestamp>,
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub finished_at: Option<Timestamp>,
    /// Why the job failed (or was cancelled), else null.
    #[schema(value_type = Option<crate::web::errors::ErrorDetail<'static>>, required = true)]
    pub error: Option<ErrorInfo>,
    /// The report of a succeeded job, else null.
    #[schema(value_type = Option<Report>, required = true)]
    pub result: Option<serde_json::Value>,
    /// The delivery of the job's completion event to its `webhook_url`; null for a job
    /// submitted without one.
    #[schema(required = true)]
    pub webhook: Option<super::webhooks::WebhookView>,
    /// When a final job's input, items and report will be removed (`RESULT_TTL` after it became
    /// final); after that the job answers 410 Gone. Null while the job is not final, or when
    /// results are kept forever.
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub expires_at: Option<Timestamp>,
}

/// A new job's input: in its `job_inputs` row, or already written in parts
/// ([`super::parts`]) while its upload arrived.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobInput {
    Whole(Vec<u8>),
    Parts { bytes: u64, parts: u32 },
}

impl JobInput {
    pub fn len(&self) -> usize {
        match self {
            JobInput::Whole(body) => body.len(),
            JobInput::Parts { bytes, .. } => *bytes as usize,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// What the `job_inputs` row holds: the body, or nothing when the input is in parts.
    pub fn body(&self) -> &[u8] {
        match self {
            JobInput::Whole(body) => body,
            JobInput::Parts { .. } => &[],
        }
    }

    /// The `job_inputs.parts` of this input (0: the body is the input).
    pub fn parts(&self) -> i32 {
        match self {
            JobInput::Whole(_) => 0,
            JobInput::Parts { parts, .. } => *parts as i32,
        }
    }

    /// Bytes of it held in memory (what a batch of submissions is weighed by).
    pub fn held(&self) -> usize {
        self.body().len()
    }
}

/// What a submission stores.
#[derive(Clone, Debug)]
pub struct NewJob {
    pub id: Uuid,
    pub visitor: Option<String>,
    /// The API key of the request that submitted it: the job's owner.
    pub api_key_id: Option<String>,
    pub queue: QueueName,
    pub format: Format,
    pub column: Option<String>,
    /// The analysis's columns beyond the text one, as JSON ([`Fields`] without `text`); None
    /// when none was named.
    pub options: Option<String>,
    pub title: String,
    pub input: JobInput,
    /// A checked webhook URL ([`crate::webhooks::address::check`]).
    pub webhook_url: Option<String>,
    /// The idempotency key the job claims, if its request carried one: the job is written only
    /// if the claim succeeds, in the same transaction.
    pub idempotency: Option<KeyClaim>,
    /// The submitting API key's `max_running` (None: no limit of its own).
    pub max_running: Option<u32>,
}

impl NewJob {
    /// Whose job this is, for the fair share of the workers.
    pub fn share(&self) -> super::fair::Share {
        super::fair::Share {
            owner: super::fair::Owner::of(self.api_key_id.as_deref(), self.visitor.as_deref()),
            max_running: self.max_running,
        }
    }

    fn key_claim(&self) -> (String, Option<&KeyClaim>) {
        (self.id.to_string(), self.idempotency.as_ref())
    }
}

/// Insert the row and its input inside the caller's SQLite transaction (the embedded queue's
/// push joins the same transaction).
pub async fn insert(conn: &mut SqliteConnection, job: &NewJob) -> Result<(), sqlx::Error> {
    insert_many(conn, &[job]).await
}

/// Rows per multi-row INSERT of new jobs (14 parameters each, under SQLite's variable limit).
const JOBS_PER_STATEMENT: usize = 64;

/// Insert several rows and their inputs (inside the caller's transaction) with multi-row
/// statements: one round trip to SQLite's connection thread per table, not per job.
pub async fn insert_many(conn: &mut SqliteConnection, jobs: &[&NewJob]) -> Result<(), sqlx::Error> {
    let now = now();
    for chunk in jobs.chunks(JOBS_PER_STATEMENT) {
        let mut rows = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "INSERT INTO sentiq_jobs (id, visitor, queue, status, format, column_name, \
             input_bytes, title, progress_total, created_at, updated_at, webhook_url, \
             api_key_id, analysis_options) ",
        );
        rows.push_values(chunk, |mut b, job| {
            b.push_bind(job.id.to_string())
                .push_bind(&job.visitor)
                .push_bind(job.queue.as_str())
                .push_bind("queued")
                .push_bind(job.format.as_str())
                .push_bind(&job.column)
                .push_bind(job.input.len() as i64)
                .push_bind(&job.title)
                .push_bind(job.input.len() as i64)
                .push_bind(&now)
                .push_bind(&now)
                .push_bind(&job.webhook_url)
                .push_bind(&job.api_key_id)
                .push_bind(&job.options);
        });
        rows.build().execute(&mut *conn).await?;
        let mut inputs = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "INSERT INTO job_inputs (job_id, body, parts) ",
        );
        inputs.push_values(chunk, |mut b, job| {
            b.push_bind(job.id.to_string())
                .push_bind(job.input.body())
                .push_bind(job.input.parts());
        });
        inputs.build().execute(&mut *conn).await?;
    }
    Ok(())
}

/// Write the new jobs whose idempotency keys can be claimed (and those without a key) inside the
/// caller's SQLite transaction. One flag per job: true when it was written, false when its key
/// is held by another job.
pub async fn insert_new_in(
    conn: &mut SqliteConnection,
    jobs: &[&NewJob],
) -> Result<Vec<bool>, sqlx::Error> {
    let fresh = if jobs.iter().any(|j| j.idempotency.is_some()) {
        let claims: Vec<_> = jobs.iter().map(|j| j.key_claim()).collect();
        idempotency::claim_in_sqlite(conn, &claims).await?
    } else {
        vec![true; jobs.len()]
    };
    let written: Vec<&NewJob> = only_fresh(jobs, &fresh);
    insert_many(conn, &written).await?;
    Ok(fresh)
}

fn only_fresh<'a>(jobs: &[&'a NewJob], fresh: &[bool]) -> Vec<&'a NewJob> {
    jobs.iter()
        .zip(fresh)
        .filter(|(_, f)| **f)
        .map(|(j, _)| *j)
        .collect()
}

/// Insert several rows and their inputs, committed together when this returns; one flag per
/// job as [`insert_new_in`] gives. On PostgreSQL, jobs without idempotency keys take one
/// statement whatever their number (columns bound as arrays and `UNNEST`ed, so the statement
/// text, and its prepared plan, is the same for every batch size); keys add a transaction that
/// claims them first. On SQLite one short transaction of multi-row inserts.
pub async fn create_many(db: &Db, jobs: &[&NewJob]) -> Result<Vec<bool>, sqlx::Error> {
    let keyed = jobs.iter().any(|j| j.idempotency.is_some());
    match db {
        _ if jobs.is_empty() => Ok(Vec::new()),
        Db::Sqlite(pool) => {
            let _write = crate::db::write_permit().await;
            let mut tx = pool.begin().await?;
            let fresh = insert_new_in(&mut tx, jobs).await?;
            tx.commit().await?;
            Ok(fresh)
        }
        Db::Postgres(pool) if !keyed => {
            insert_many_postgres(pool, jobs).await?;
            Ok(vec![true; jobs.len()])
        }
        Db::Postgres(pool) => {
            let mut tx = pool.begin().await?;
            let claims: Vec<_> = jobs.iter().map(|j| j.key_claim()).collect();
            let fresh = idempotency::claim_in_postgres(&mut tx, &claims).await?;
            let written = only_fresh(jobs, &fresh);
            if !written.is_empty() {
                insert_many_postgres(&mut *tx, &written).await?;
            }
            tx.commit().await?;
            Ok(fresh)
        }
    }
}

/// Rows and inputs of `jobs` in one PostgreSQL statement.
async fn insert_many_postgres<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    jobs: &[&NewJob],
) -> Result<(), sqlx::Error> {
    let ids: Vec<String> = jobs.iter().map(|j| j.id.to_string()).collect();
    let visitors: Vec<Option<&str>> = jobs.iter().map(|j| j.visitor.as_deref()).collect();
    let queues: Vec<&str> = jobs.iter().map(|j| j.queue.as_str()).collect();
    let formats: Vec<&str> = jobs.iter().map(|j| j.format.as_str()).collect();
    let columns: Vec<Option<&str>> = jobs.iter().map(|j| j.column.as_deref()).collect();
    let sizes: Vec<i64> = jobs.iter().map(|j| j.input.len() as i64).collect();
    let titles: Vec<&str> = jobs.iter().map(|j| j.title.as_str()).collect();
    let bodies: Vec<&[u8]> = jobs.iter().map(|j| j.input.body()).collect();
    let parts: Vec<i32> = jobs.iter().map(|j| j.input.parts()).collect();
    let webhooks: Vec<Option<&str>> = jobs.iter().map(|j| j.webhook_url.as_deref()).collect();
    let keys: Vec<Option<&str>> = jobs.iter().map(|j| j.api_key_id.as_deref()).collect();
    let options: Vec<Option<&str>> = jobs.iter().map(|j| j.options.as_deref()).collect();
    sqlx::query(
        "WITH j AS (INSERT INTO sentiq_jobs (id, visitor, queue, status, format, \
         column_name, input_bytes, title, progress_total, created_at, updated_at, \
         webhook_url, api_key_id, analysis_options) \
         SELECT id, visitor, queue, 'queued', format, col, size, title, size, $8, $8, \
         webhook, key, opts FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], \
         $5::text[], $6::bigint[], $7::text[], $10::text[], $11::text[], $12::text[]) \
         AS t(id, visitor, queue, format, col, size, title, webhook, key, opts) \
         RETURNING id) \
         INSERT INTO job_inputs (job_id, body, parts) \
         SELECT i.id, i.body, i.parts FROM UNNEST($1::text[], $9::bytea[], $13::int[]) \
         AS i(id, body, parts) \
         JOIN j ON j.id = i.id",
    )
    .bind(&ids)
    .bind(&visitors)
    .bind(&queues)
    .bind(&formats)
    .bind(&columns)
    .bind(&sizes)
    .bind(&titles)
    .bind(now())
    .bind(&bodies)
    .bind(&webhooks)
    .bind(&keys)
    .bind(&options)
    .bind(&parts)
    .execute(executor)
    .await?;
    Ok(())
}

/// Which of the jobs `ids` are queued or running.
pub async fn open_among(db: &Db, ids: &[String]) -> Result<Vec<String>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    match db {
        Db::Postgres(pool) => {
            sqlx::query_scalar(
                "SELECT id FROM sentiq_jobs WHERE id = ANY($1) AND finished_at IS NULL",
            )
            .bind(ids)
            .fetch_all(pool)
            .await
        }
        Db::Sqlite(pool) => {
            let ids = serde_json::to_string(ids).expect("strings serialise");
            sqlx::query_scalar(
                "SELECT id FROM sentiq_jobs WHERE id IN (SELECT value FROM json_each($1)) \
                 AND finished_at IS NULL",
            )
            .bind(ids)
            .fetch_all(pool)
            .await
        }
    }
}

pub async fn get(db: &Db, id: &str) -> Result<Option<JobRow>, sqlx::Error> {
    on_db!(db, |pool| {
        sqlx::query_as::<_, JobRow>(concat!(
            "SELECT ",
            columns!(),
            " FROM sentiq_jobs WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(pool)
        .await
    })
}

/// A job's stored input: its body, and how many parts hold it instead (0: the body is all).
pub async fn input(db: &Db, id: &str) -> Result<Option<(Vec<u8>, i32)>, sqlx::Error> {
    on_db!(db, |pool| {
        sqlx::query_as("SELECT body, parts FROM job_inputs WHERE job_id = $1")
            .bind(id)
            .fetch_optional(pool)
            .await
    })
}

/// The visitor's most recent jobs, newest first (tombstones left out).
pub async fn recent_for_visitor(
    db: &Db,
    visitor: &str,
    limit: i64,
) -> Result<Vec<JobRow>, sqlx::Error> {
    on_db!(db, |pool| {
        sqlx::query_as::<_, JobRow>(concat!(
            "SELECT ",
            columns!(),
            " FROM sentiq_jobs WHERE visitor = $1 AND purged_at IS NULL \
             ORDER BY created_at DESC, id DESC LIMIT $2"
        ))
        .bind(visitor)
        .bind(limit)
        .fetch_all(pool)
        .await
    })
}

/// Whose jobs a listing holds: an API key's, or a browser visitor's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner<'a> {
    Key(&'a str),
    Visitor(&'a str),
}

/// One page of an owner's jobs, newest first (`GET /api/jobs`), tombstones left out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listing<'a> {
    pub owner: Owner<'a>,
    /// Only jobs of these statuses (none: every status).
    pub statuses: Vec<Status>,
    /// Only jobs created after this instant (exclusive).
    pub created_after: Option<Timestamp>,
    /// Only jobs created before this instant (exclusive).
    pub created_before: Option<Timestamp>,
    /// The position of the last job of the previous page, `(created_at, id)`: the page holds
    /// the jobs after it in the listing's order.
    pub after: Option<(Timestamp, String)>,
    pub limit: i64,
}

impl Listing<'_> {
    /// The statement and its text parameters, in order; the limit is the last parameter, bound
    /// as a number. Keyset pagination: the owner's partial index (`jobs_by_api_key`,
    /// `jobs_by_visitor`) is on `(owner, created_at DESC, id DESC)` of the jobs that are not
    /// tombstones, so a page is one range of it, read in order from the previous page's last
    /// row on, however deep the page.
    pub fn statement(&self) -> (String, Vec<String>) {
        let (column, owner) = match self.owner {
            Owner::Key(key) => ("api_key_id", key),
            Owner::Visitor(visitor) => ("visitor", visitor),
        };
        let mut params = vec![owner.to_owned()];
        let next = |value: String, params: &mut Vec<String>| {
            params.push(value);
            format!("${}", params.len())
        };
        let mut sql = format!(
            "SELECT {} FROM sentiq_jobs WHERE {column} = $1 AND purged_at IS NULL",
            columns!()
        );
        if !self.statuses.is_empty() {
            let placeholders: Vec<String> = self
                .statuses
                .iter()
                .map(|s| next(s.as_str().to_owned(), &mut params))
                .collect();
            sql += &format!(" AND status IN ({})", placeholders.join(", "));
        }
        if let Some(after) = self.created_after {
            sql += &format!(" AND created_at > {}", next(after.to_string(), &mut params));
        }
        if let Some(before) = self.created_before {
            sql += &format!(
                " AND created_at < {}",
                next(before.to_string(), &mut params)
            );
        }
        if let Some((at, id)) = &self.after {
            let at = next(at.to_string(), &mut params);
            let id = next(id.clone(), &mut params);
            sql += &format!(" AND (created_at, id) < ({at}, {id})");
        }
        sql += &format!(
            " ORDER BY created_at DESC, id DESC LIMIT ${}",
            params.len() + 1
        );
        (sql, params)
    }
}

/// The jobs of a [`Listing`] page.
pub async fn list(db: &Db, listing: &Listing<'_>) -> Result<Vec<JobRow>, sqlx::Error> {
    let (sql, params) = listing.statement();
    on_db!(db, |pool| {
        let mut query = sqlx::query_as::<_, JobRow>(sqlx::AssertSqlSafe(sql));
        for param in params {
            query = query.bind(param);
        }
        query.bind(listing.limit).fetch_all(pool).await
    })
}

/// A claimed row and its input, read in the same statement.
#[derive(Debug, FromRow)]
pub struct Claimed {
    #[sqlx(flatten)]
    pub job: JobRow,
    pub input: Option<Vec<u8>>,
}

/// `queued → running`, counting the attempt. Returns the claimed row (whose `attempts` is the
/// fencing token of this run), or None when the job is not queued (already running, final,
/// unknown): a duplicate delivery then does nothing.
pub async fn claim(db: &Db, id: &str) -> Result<Option<JobRow>, sqlx::Error> {
    Ok(claim_with_input(db, id).await?.map(|c| c.job))
}

/// [`claim`], returning the input too (when it is at most a part, and so held whole): one
/// round trip from delivery to a running job.
pub async fn claim_with_input(db: &Db, id: &str) -> Result<Option<Claimed>, sqlx::Error> {
    let _write = db.write_permit().await;
    let now = now();
    on_db!(db, |pool| {
        sqlx::query_as::<_, Claimed>(concat!(
            "UPDATE sentiq_jobs SET status = 'running', attempts = attempts + 1, \
             started_at = COALESCE(started_at, $1), updated_at = $1, progress_done = 0, \
             version = version + 1 WHERE id = $2 AND status = 'queued' RETURNING ",
            columns!(),
            ", CASE WHEN input_bytes <= $3 \
             THEN (SELECT body FROM job_inputs WHERE job_id = $2 AND parts = 0) END AS input"
        ))
        .bind(&now)
        .bind(id)
        .bind(super::parts::PART_BYTES as i64)
        .fetch_optional(pool)
        .await
    })
}

/// The statement of [`claim_many`] (`$1` now, `$2` the ids, `$3` the largest input returned).
pub const CLAIM_MANY: &str = concat!(
    "UPDATE sentiq_jobs SET status = 'running', attempts = attempts + 1, \
     started_at = COALESCE(started_at, $1), updated_at = $1, progress_done = 0, \
     version = version + 1 WHERE id = ANY($2) AND status = 'queued' RETURNING ",
    columns!(),
    ", CASE WHEN input_bytes <= $3 \
     THEN (SELECT body FROM job_inputs WHERE job_id = sentiq_jobs.id AND parts = 0) END AS input"
);

/// Largest input [`claim_many`] returns with its job. A worker holds many claimed jobs while
/// they wait for an analysis slot; larger inputs are read when their slot is free ([`input`]),
/// so what the waiting jobs hold in memory stays small whatever their sizes.
pub const CLAIMED_INPUT_MAX_BYTES: i64 = 2048;

/// [`claim_with_input`] for many jobs in one PostgreSQL statement (the worker's group commit,
/// see [`crate::jobs::batch`]): the claimed rows in no particular order, with their inputs up to
/// [`CLAIMED_INPUT_MAX_BYTES`] (None for larger ones); ids not queued (already running, final,
/// unknown) are simply absent.
pub async fn claim_many(pool: &PgPool, ids: &[String]) -> Result<Vec<Claimed>, sqlx::Error> {
    sqlx::query_as::<_, Claimed>(CLAIM_MANY)
        .bind(now())
        .bind(ids)
        .bind(CLAIMED_INPUT_MAX_BYTES)
        .fetch_all(pool)
        .await
}

/// Keep the lease of a running job fresh. False when this run no longer owns the job.
pub async fn touch(db: &Db, id: &str, attempt: i64) -> Result<bool, sqlx::Error> {
    let _write = db.write_permit().await;
    let now = now();
    let r = on_db!(db, |pool| {
        sqlx::query(
            "UPDATE sentiq_jobs SET updated_at = $1 \
             WHERE id = $2 AND status = 'running' AND attempts = $3",
        )
        .bind(&now)
        .bind(id)
        .bind(attempt)
        .execute(pool)
        .await?
        .rows_affected()
    });
    Ok(r == 1)
}

/// Record progress of a running job. False when the job is no longer running (cancelled).
pub async fn set_progress(
    db: &Db,
    id: &str,
    attempt: i64,
    done: u64,
    total: u64,
) -> Result<bool, sqlx::Error> {
    let _write = db.write_permit().await;
    let now = now();
    let r = on_db!(db, |pool| {
        sqlx::query(
            "UPDATE sentiq_jobs SET progress_done = $1, progress_total = $2, updated_at = $3, \
             version = version + 1 WHERE id = $4 AND status = 'running' AND attempts = $5",
        )
        .bind(done as i64)
        .bind(total as i64)
        .bind(&now)
        .bind(id)
        .bind(attempt)
        .execute(pool)
        .await?
        .rows_affected()
    });
    Ok(r == 1)
}

const SUCCEED: &str = "UPDATE sentiq_jobs SET status = 'succeeded', result = $1, \
     progress_done = progress_total, finished_at = $2, updated_at = $2, expires_at = $5, \
     version = version + 1 WHERE id = $3 AND status = 'running' AND attempts = $4";

/// `running → succeeded` with the report. False when the row was not running any more.
pub async fn succeed(
    db: &Db,
    id: &str,
    attempt: i64,
    report_json: &str,
    result_ttl: Option<Duration>,
) -> Result<bool, sqlx::Error> {
    finish(db, id, attempt, report_json, &[], result_ttl).await
}

/// `running → succeeded` with the report and the last items, in one transaction: a small job's
/// items and final state cost one commit. The input goes in the same transaction: the items
/// and the report hold all that is shown of a succeeded job, and a succeeded job is never run
/// again. Its data expires `result_ttl` from now (None: never). False (and nothing written)
/// when the row was not running under this attempt any more.
pub async fn finish(
    db: &Db,
    id: &str,
    attempt: i64,
    report_json: &str,
    items: &[ItemRow],
    result_ttl: Option<Duration>,
) -> Result<bool, sqlx::Error> {
    let _write = db.write_permit().await;
    let now = Timestamp::now();
    on_db!(db, |pool| {
        let mut tx = pool.begin().await?;
        let applied = sqlx::query(SUCCEED)
            .bind(report_json)
            .bind(now.to_string())
            .bind(id)
            .bind(attempt)
            .bind(expiry(now, result_ttl))
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
        if !applied {
            tx.rollback().await?;
            return Ok(false);
        }
        insert_chunks!(tx, id, items);
        sqlx::query("DELETE FROM job_inputs WHERE job_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    })
}

/// One run's final write: its report and its last items (see [`finish`]).
#[derive(Debug)]
pub struct Finish {
    pub id: String,
    pub attempt: i64,
    pub report_json: String,
    pub items: Vec<ItemRow>,
}

/// The statement of [`finish_many`]. Data-modifying CTEs run as one statement in one snapshot:
/// the items are inserted, and the inputs deleted, only for the rows this statement finished.
pub const FINISH_MANY: &str = "WITH done AS (UPDATE sentiq_jobs j SET status = 'succeeded', result = r.report, \
     progress_done = j.progress_total, finished_at = $4, updated_at = $4, expires_at = $10, \
     version = j.version + 1 \
     FROM UNNEST($1::text[], $2::bigint[], $3::text[]) AS r(id, attempt, report) \
     WHERE j.id = r.id AND j.status = 'running' AND j.attempts = r.attempt \
     RETURNING j.id), \
     chunks AS (INSERT INTO job_item_chunks (job_id, last_position, first_position, items, body, ticks) \
     SELECT c.* FROM UNNEST($5::text[], $6::bigint[], $7::bigint[], $8::bigint[], $9::bytea[], \
     $11::bytea[]) AS c(job_id, last_position, first_position, items, body, ticks) \
     WHERE c.job_id IN (SELECT id FROM done) \
     ON CONFLICT (job_id, last_position) DO UPDATE SET first_position = excluded.first_position, \
     items = excluded.items, body = excluded.body, ticks = excluded.ticks), \
     inputs AS (DELETE FROM job_inputs WHERE job_id IN (SELECT id FROM done)) \
     SELECT id FROM done";

/// [`finish`] for many runs in one PostgreSQL statement (the worker's group commit, see
/// [`crate::jobs::batch`]): every row still running under its run's attempt becomes
/// `succeeded` (expiring `result_ttl` from now) and gets its items, and loses its input, all
/// committed together. Returns, per run in order, whether its row was finished (false:
/// cancelled or taken over meanwhile, and its items not written).
pub async fn finish_many(
    pool: &PgPool,
    runs: &[Finish],
    result_ttl: Option<Duration>,
) -> Result<Vec<bool>, sqlx::Error> {
    let ids: Vec<&str> = runs.iter().map(|r| r.id.as_str()).collect();
    let attempts: Vec<i64> = runs.iter().map(|r| r.attempt).collect();
    let reports: Vec<&str> = runs.iter().map(|r| r.report_json.as_str()).collect();
    let (mut job_ids, mut lasts, mut firsts, mut counts, mut bodies, mut ticks) = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    for run in runs {
        for chunk in items::encode(&run.items) {
            job_ids.push(run.id.as_str());
            lasts.push(chunk.last_position);
            firsts.push(chunk.first_position);
            counts.push(chunk.items);
            bodies.push(chunk.body);
            ticks.push(chunk.ticks);
        }
    }
    let now = Timestamp::now();
    let finished: Vec<String> = sqlx::query_scalar(FINISH_MANY)
        .bind(&ids)
        .bind(&attempts)
        .bind(&reports)
        .bind(now.to_string())
        .bind(&job_ids)
        .bind(&lasts)
        .bind(&firsts)
        .bind(&counts)
        .bind(&bodies)
        .bind(expiry(now, result_ttl))
        .bind(&ticks)
        .fetch_all(pool)
        .await?;
    let finished: std::collections::HashSet<&str> = finished.iter().map(String::as_str).collect();
    Ok(runs
        .iter()
        .map(|r| finished.contains(r.id.as_str()))
        .collect())
}

/// `running → failed` with an error a person can read, expiring `result_ttl` from now (the
/// input is kept until then: an operator may retry the job). False when the row was not
/// running.
pub async fn fail(
    db: &Db,
    id: &str,
    attempt: i64,
    code: &str,
    message: &str,
    result_ttl: Option<Duration>,
) -> Result<bool, sqlx::Error> {
    let _write = db.write_permit().await;
    let now = Timestamp::now();
    let expires_at = expiry(now, result_ttl);
    let now = now.to_string();
    let r = on_db!(db, |pool| {
        sqlx::query(
            "UPDATE sentiq_jobs SET status = 'failed', error_code = $1, error_message = $2, \
             finished_at = $3, updated_at = $3, expires_at = $6, version = version + 1 \
             WHERE id = $4 AND status = 'running' AND attempts = $5",
        )
        .bind(code)
        .bind(message)
        .bind(&now)
        .bind(id)
        .bind(attempt)
        .bind(&expires_at)
        .execute(pool)
        .await?
        .rows_affected()
    });
    Ok(r == 1)
}

const REQUEUE: &str = "UPDATE sentiq_jobs SET status = 'queued', updated_at = $1, \
     version = version + 1 WHERE id = $2 AND status = 'running' AND attempts = $3";

/// `running → queued` for this run's job (a retry), in the caller's SQLite transaction.
pub async fn requeue_in(
    conn: &mut SqliteConnection,
    id: &str,
    attempt: i64,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(REQUEUE)
        .bind(now())
        .bind(id)
        .bind(attempt)
        .execute(&mut *conn)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// `running → queued` for this run's job (a retry), committed at once.
pub async fn requeue(db: &Db, id: &str, attempt: i64) -> Result<bool, sqlx::Error> {
    let _write = db.write_permit().await;
    let now = now();
    let r = on_db!(db, |pool| {
        sqlx::query(REQUEUE)
            .bind(&now)
            .bind(id)
            .bind(attempt)
            .execute(pool)
            .await?
            .rows_affected()
    });
    Ok(r == 1)
}

/// A job the reconciler looks at: untouched for a lease, queued or running.
#[derive(Clone, Debug, FromRow)]
pub struct StaleJob {
    pub id: String,
    pub queue: QueueName,
    pub status: Status,
    pub attempts: i64,
    pub updated_at: Timestamp,
}

/// The statement of [`stale_embedded`]. The live queue entries are read once, into a list the
/// queued rows are looked up in: a lookup per queued row (a correlated subquery; the payload is
/// not indexed) made the reconciler quadratic. After a flood of 60,000 submissions it then read
/// for minutes on end, and that long read kept SQLite from ever resetting its WAL (4 GB), which
/// slowed every other statement. An id is unique across queues, so an entry in any queue counts.
pub const STALE_EMBEDDED: &str = "SELECT j.id, j.queue, j.status, j.attempts, j.updated_at \
     FROM sentiq_jobs j WHERE j.finished_at IS NULL AND j.updated_at < $1 \
     AND (j.status = 'running' OR (j.status = 'queued' AND j.held = 0 \
     AND json_quote(j.id) NOT IN (SELECT CAST(q.job AS TEXT) FROM Jobs q \
     WHERE q.status IN ('Pending', 'Queued', 'Running')))) \
     ORDER BY j.updated_at LIMIT 500";

/// Embedded queue: jobs that need a new queue entry, both untouched since `stale_before`:
/// running jobs whose lease ran out (their worker died) and queued jobs without a live entry in
/// the apalis SQLite queue (the push was lost).
pub async fn stale_embedded(
    pool: &SqlitePool,
    stale_before: &str,
) -> Result<Vec<StaleJob>, sqlx::Error> {
    sqlx::query_as(STALE_EMBEDDED)
        .bind(stale_before)
        .fetch_all(pool)
        .await
}

/// The statement of [`stale_candidates`] (`$1` stale before, `$2`/`$3` keyset position, `$4`
/// limit), through `jobs_open`.
pub const STALE_CANDIDATES: &str = "SELECT id, queue, status, attempts, updated_at FROM sentiq_jobs \
     WHERE status IN ('queued', 'running') AND finished_at IS NULL AND updated_at < $1 \
     AND (updated_at > $2 OR (updated_at = $2 AND id > $3)) \
     ORDER BY updated_at, id LIMIT $4";

/// Queued or running jobs untouched since `stale_before`, oldest first, after the keyset
/// position `after` (`updated_at`, `id`): the candidates whose queue entries the Redis queue
/// checks.
pub async fn stale_candidates(
    db: &Db,
    stale_before: &str,
    after: Option<(&str, &str)>,
    limit: i64,
) -> Result<Vec<StaleJob>, sqlx::Error> {
    let (after_at, after_id) = after.unwrap_or(("", ""));
    on_db!(db, |pool| {
        sqlx::query_as::<_, StaleJob>(STALE_CANDIDATES)
            .bind(stale_before)
            .bind(after_at)
            .bind(after_id)
            .bind(limit)
            .fetch_all(pool)
            .await
    })
}

const RESET_STALE: &str = "UPDATE sentiq_jobs SET status = 'queued', updated_at = $1, \
     version = version + 1 WHERE id = $2 AND status IN ('queued', 'running') \
     AND attempts = $3 AND updated_at < $4";

/// Hand a stale job back to the queue state, in the caller's SQLite transaction (conditional on
/// it still being stale under the same attempt: of concurrent reconcilers, one wins).
pub async fn reset_stale_in(
    conn: &mut SqliteConnection,
    job: &StaleJob,
    stale_before: &str,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(RESET_STALE)
        .bind(now())
        .bind(&job.id)
        .bind(job.attempts)
        .bind(stale_before)
        .execute(&mut *conn)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// [`reset_stale_in`], committed at once.
pub async fn reset_stale(db: &Db, job: &StaleJob, stale_before: &str) -> Result<bool, sqlx::Error> {
    let _write = db.write_permit().await;
    let now = now();
    let r = on_db!(db, |pool| {
        sqlx::query(RESET_STALE)
            .bind(&now)
            .bind(&job.id)
            .bind(job.attempts)
            .bind(stale_before)
            .execute(pool)
            .await?
            .rows_affected()
    });
    Ok(r == 1)
}

/// Outcome of a cancel request.
#[derive(Debug)]
pub enum Cancel {
    Cancelled(Box<JobRow>),
    AlreadyFinal(Box<JobRow>),
    NotFound,
}

/// `queued | running → cancelled`, expiring `result_ttl` from now (the input is kept until
/// then: an operator may retry the job).
pub async fn cancel(
    db: &Db,
    id: &str,
    result_ttl: Option<Duration>,
) -> Result<Cancel, sqlx::Error> {
    let row = {
        let _write = db.write_permit().await;
        let now = Timestamp::now();
        on_db!(db, |pool| {
            sqlx::query_as::<_, JobRow>(concat!(
                "UPDATE sentiq_jobs SET status = 'cancelled', finished_at = $1, updated_at = $1, \
                 error_code = 'cancelled', error_message = 'the analysis was cancelled', \
                 expires_at = $3, version = version + 1 \
                 WHERE id = $2 AND status IN ('queued', 'running') RETURNING ",
                columns!()
            ))
            .bind(now.to_string())
            .bind(id)
            .bind(expiry(now, result_ttl))
            .fetch_optional(pool)
            .await?
        })
    };
    Ok(match row {
        Some(r) => Cancel::Cancelled(Box::new(r)),
        None => match get(db, id).await? {
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
    /// The row the item came from (kept in chunks only; legacy per-item rows have none).
    #[sqlx(skip)]
    #[serde(skip)]
    pub source: Source,
    /// The item's language (ISO 639-1), when it was detected.
    #[sqlx(skip)]
    #[serde(skip)]
    pub lang: Option<&'static str>,
}

/// Items per transaction on PostgreSQL, where writers do not wait for each other (a few
/// chunks, at most [`items::CHUNK_ITEMS`] items).
pub const ITEMS_PER_TRANSACTION: usize = items::CHUNK_ITEMS;
/// Items per transaction on SQLite: the one writer's lock is held for the whole transaction, and
/// a submission that arrives meanwhile waits it out (5,000 items written a row each put the
/// submission p99 under load near 50 ms, 500 near 25 ms; BENCHMARKS.md).
pub const SQLITE_ITEMS_PER_TRANSACTION: usize = 500;

/// Rows per write transaction of a run's items on `db`.
pub fn items_per_transaction(db: &Db) -> usize {
    match db {
        Db::Sqlite(_) => SQLITE_ITEMS_PER_TRANSACTION,
        Db::Postgres(_) => ITEMS_PER_TRANSACTION,
    }
}

/// One chunk of items ([`items`]); a rerun writes the same items again (the analysis is
/// deterministic), so a chunk ending at the same position replaces the earlier one.
const INSERT_CHUNK: &str = "INSERT INTO job_item_chunks \
     (job_id, last_position, first_position, items, body, ticks) VALUES ($1, $2, $3, $4, $5, $6) \
     ON CONFLICT (job_id, last_position) DO UPDATE SET first_position = excluded.first_position, \
     items = excluded.items, body = excluded.body, ticks = excluded.ticks";

/// The text of [`OWNS_RUN`], for `concat!`.
macro_rules! owns_run {
    () => {
        "SELECT 1 FROM sentiq_jobs WHERE id = $1 AND status = 'running' AND attempts = $2"
    };
}
/// Whether run `attempt` still owns job `id`.
const OWNS_RUN: &str = owns_run!();
/// The same on PostgreSQL, share-locking the row until the transaction ends: a cancel, a retry
/// or a take-over waits for the items being written. (On SQLite the write gate and the one
/// writer's lock do the same.)
const OWNS_RUN_LOCKED: &str = concat!(owns_run!(), " FOR SHARE");

/// Insert a batch of items of run `attempt`, in short transactions, each fenced by the run's
/// token: a run that no longer owns the job (cancelled, or taken over by a later attempt after
/// its lease ran out) writes nothing. Returns false when the run was found fenced out.
pub async fn insert_items(
    db: &Db,
    job_id: &str,
    attempt: i64,
    items: &[ItemRow],
) -> Result<bool, sqlx::Error> {
    let owns = match db {
        Db::Sqlite(_) => OWNS_RUN,
        Db::Postgres(_) => OWNS_RUN_LOCKED,
    };
    for group in items.chunks(items_per_transaction(db)) {
        let _write = db.write_permit().await;
        let owned = on_db!(db, |pool| {
            let mut tx = pool.begin().await?;
            // Write first, then look: on SQLite a transaction that reads before it writes
            // fails at once ("database is locked") if another connection wrote in between.
            insert_chunks!(tx, job_id, group);
            let owned = sqlx::query(owns)
                .bind(job_id)
                .bind(attempt)
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
            if owned {
                tx.commit().await?;
            } else {
                tx.rollback().await?;
            }
            owned
        });
        if !owned {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Chunks removed per statement by [`delete_items`] (a few megabytes at most).
const CHUNKS_PER_DELETE: i64 = 16;

/// Delete the items of a job, unless another run (a later attempt) owns it now: a run that lost
/// its job must not delete the items the new run is writing. A large job's items go a few
/// chunks per statement, so on SQLite no single write holds the lock for long.
pub async fn delete_items(db: &Db, job_id: &str, attempt: i64) -> Result<(), sqlx::Error> {
    loop {
        let _write = db.write_permit().await;
        let deleted = on_db!(db, |pool| {
            sqlx::query(
                "DELETE FROM job_item_chunks WHERE job_id = $1 AND last_position IN \
                 (SELECT last_position FROM job_item_chunks WHERE job_id = $1 \
                 ORDER BY last_position LIMIT $3) \
                 AND NOT EXISTS (SELECT 1 FROM sentiq_jobs WHERE id = $1 AND attempts <> $2)",
            )
            .bind(job_id)
            .bind(attempt)
            .bind(CHUNKS_PER_DELETE)
            .execute(pool)
            .await?
            .rows_affected()
        });
        if deleted < CHUNKS_PER_DELETE as u64 {
            return Ok(());
        }
    }
}

/// One line of the transition log.
#[derive(Clone, Debug, FromRow, PartialEq, Eq)]
pub struct Transition {
    pub from_status: String,
    pub to_status: String,
    pub attempt: i64,
}

/// The status changes of a job, in order (written by the database's trigger).
pub async fn transitions(db: &Db, job_id: &str) -> Result<Vec<Transition>, sqlx::Error> {
    on_db!(db, |pool| {
        sqlx::query_as::<_, Transition>(
            "SELECT from_status, to_status, attempt FROM job_transitions \
             WHERE job_id = $1 ORDER BY id",
        )
        .bind(job_id)
        .fetch_all(pool)
        .await
    })
}

/// Jobs by queue and status (for `/metrics`).
pub async fn counts(db: &Db) -> Result<Vec<(String, String, i64)>, sqlx::Error> {
    on_db!(db, |pool| {
        sqlx::query_as(
            "SELECT queue, status, COUNT(*) FROM sentiq_jobs GROUP BY queue, status ORDER BY 1, 2",
        )
        .fetch_all(pool)
        .await
    })
}

/// The items after position `after` of the first chunk of job `job_id` that has any, in
/// position order; empty when there are no more. One short query per chunk (keyset pagination
/// on the chunk's last position), so a reader holds no connection between chunks and at most
/// one decoded chunk ([`items::CHUNK_ITEMS`] items) in memory.
pub async fn items_after(db: &Db, job_id: &str, after: i64) -> Result<Vec<ItemRow>, sqlx::Error> {
    let body: Option<Vec<u8>> = on_db!(db, |pool| {
        sqlx::query_scalar(
            "SELECT body FROM job_item_chunks WHERE job_id = $1 AND last_position > $2 \
             ORDER BY last_position LIMIT 1",
        )
        .bind(job_id)
        .bind(after)
        .fetch_optional(pool)
        .await?
    });
    let Some(body) = body else {
        return Ok(Vec::new());
    };
    let mut items = items::decode(&body)?;
    items.retain(|item| item.position > after);
    Ok(items)
}

/// Up to `limit` of a job's items after position `after`, in position order (keyset
/// pagination; see [`items_after`]).
pub async fn items_page(
    db: &Db,
    job_id: &str,
    after: i64,
    limit: i64,
) -> Result<Vec<ItemRow>, sqlx::Error> {
    let limit = usize::try_from(limit).unwrap_or(0);
    let mut page: Vec<ItemRow> = Vec::new();
    while page.len() < limit {
        let next = page.last().map_or(after, |item| item.position);
        let items = items_after(db, job_id, next).await?;
        if items.is_empty() {
            break;
        }
        page.extend(items);
    }
    page.truncate(limit);
    Ok(page)
}

/// How many items of job `job_id` are stored.
pub async fn item_count(db: &Db, job_id: &str) -> Result<i64, sqlx::Error> {
    on_db!(db, |pool| {
        sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(items), 0) AS BIGINT) FROM job_item_chunks \
             WHERE job_id = $1",
        )
        .bind(job_id)
        .fetch_one(pool)
        .await
    })
}

/// `failed | cancelled → queued` (an operator's retry, see [`retry`]), unless the job is a
/// tombstone (its input is gone). `attempts` is kept (it
/// is the fencing token: a cancelled run that is still stopping keeps failing its writes, as
/// the next run's token will be higher); `retry_base` moves up to it, which restores the budget.
const RETRY: &str = concat!(
    "UPDATE sentiq_jobs SET status = 'queued', retry_base = attempts, progress_done = 0, \
     started_at = NULL, finished_at = NULL, error_code = NULL, error_message = NULL, \
     result = NULL, expires_at = NULL, updated_at = $1, version = version + 1 WHERE id = $2 \
     AND status IN ('failed', 'cancelled') AND purged_at IS NULL RETURNING ",
    columns!()
);

/// The statements of [`retry`] on a connection or transaction of either dialect.
macro_rules! retry_on {
    ($conn:expr, $id:expr) => {{
        let row = sqlx::query_as::<_, JobRow>(RETRY)
            .bind(now())
            .bind($id)
            .fetch_optional(&mut *$conn)
            .await?;
        if row.is_some() {
            sqlx::query("DELETE FROM job_item_chunks WHERE job_id = $1")
                .bind($id)
                .execute(&mut *$conn)
                .await?;
        }
        Ok::<_, sqlx::Error>(row)
    }};
}

/// [`retry`] in the caller's SQLite transaction (the embedded queue's push joins it).
pub async fn retry_in(
    conn: &mut SqliteConnection,
    id: &str,
) -> Result<Option<JobRow>, sqlx::Error> {
    retry_on!(conn, id)
}

/// `failed | cancelled → queued` for an operator's retry, committed at once: the error, the
/// report, the progress and the items are cleared and the job gets the full
/// [`crate::jobs::worker::MAX_ATTEMPTS`] runs again (counted from `retry_base`). Returns the
/// queued row (the caller enqueues it), or None when the job is not retryable (unknown, or in
/// another state). A job cancelled while it ran can be retried at once: its old run may still
/// be stopping, but its fencing token is lower than any new run's, so its writes fail.
pub async fn retry(db: &Db, id: &str) -> Result<Option<JobRow>, sqlx::Error> {
    let _write = db.write_permit().await;
    on_db!(db, |pool| {
        let mut tx = pool.begin().await?;
        let row = retry_on!(tx, id)?;
        tx.commit().await?;
        Ok(row)
    })
}

/// Items per conversion step of [`convert_legacy_items`] (one chunk).
const LEGACY_ITEMS_PER_STEP: i64 = items::CHUNK_ITEMS as i64;

/// Convert the rows of the former `job_items` table (one row per item, written before items
/// were stored in chunks) into chunks, a chunk per short transaction, then drop the table. Run
/// at start-up after the migrations; does nothing once the table is gone. Conversions by two
/// processes at once write the same chunks. Returns how many items were converted.
pub async fn convert_legacy_items(db: &Db) -> Result<u64, sqlx::Error> {
    let exists =
        match db {
            Db::Sqlite(pool) => sqlx::query_scalar::<_, i64>(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'job_items'",
            )
            .fetch_one(pool)
            .await?,
            Db::Postgres(pool) => {
                sqlx::query_scalar::<_, i64>(
                    "SELECT COUNT(*) FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_name = 'job_items'",
                )
                .fetch_one(pool)
                .await?
            }
        };
    if exists == 0 {
        return Ok(0);
    }
    let mut converted = 0;
    loop {
        let job: Option<String> = on_db!(db, |pool| {
            sqlx::query_scalar("SELECT job_id FROM job_items LIMIT 1")
                .fetch_optional(pool)
                .await?
        });
        let Some(job) = job else { break };
        converted += convert_legacy_step(db, &job).await?;
    }
    let _write = db.write_permit().await;
    on_db!(db, |pool| {
        sqlx::query("DROP TABLE IF EXISTS job_items")
            .execute(pool)
            .await?;
    });
    if converted > 0 {
        tracing::info!(items = converted, "stored items converted to chunks");
    }
    Ok(converted)
}

/// Move the first [`LEGACY_ITEMS_PER_STEP`] legacy items of `job` into a chunk.
async fn convert_legacy_step(db: &Db, job: &str) -> Result<u64, sqlx::Error> {
    let _write = db.write_permit().await;
    on_db!(db, |pool| {
        let mut tx = pool.begin().await?;
        let rows: Vec<ItemRow> = sqlx::query_as(
            "SELECT position, item_id, text, neg, neu, pos, compound FROM job_items \
             WHERE job_id = $1 ORDER BY position LIMIT $2",
        )
        .bind(job)
        .bind(LEGACY_ITEMS_PER_STEP)
        .fetch_all(&mut *tx)
        .await?;
        let last = rows.last().map_or(i64::MAX, |r| r.position);
        insert_chunks!(tx, job, &rows);
        sqlx::query("DELETE FROM job_items WHERE job_id = $1 AND position <= $2")
            .bind(job)
            .bind(last)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(rows.len() as u64)
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A queued job row, for tests of what is decided from a row.
    pub(crate) fn row() -> JobRow {
        // To the millisecond, as stored.
        let now: Timestamp = now().parse().unwrap();
        JobRow {
            id: Uuid::new_v4().to_string(),
            visitor: None,
            queue: QueueName::Quick,
            status: Status::Queued,
            format: Format::Text,
            column_name: None,
            analysis_options: None,
            input_bytes: 1,
            title: String::new(),
            progress_done: 0,
            progress_total: 1,
            attempts: 0,
            retry_base: 0,
            version: 1,
            created_at: now,
            started_at: None,
            finished_at: None,
            updated_at: now,
            error_code: None,
            error_message: None,
            result: None,
            webhook_url: None,
            expires_at: None,
            purged_at: None,
            purge_reason: None,
            api_key_id: None,
        }
    }

    #[test]
    fn a_listing_binds_each_filter_once_and_pages_by_created_at_then_id() {
        let at: Timestamp = "2026-12-10T10:00:00.000Z".parse().unwrap();
        let listing = Listing {
            owner: Owner::Key("k1"),
            statuses: vec![Status::Queued, Status::Failed],
            created_after: Some(at),
            created_before: None,
            after: Some((at, "job-9".into())),
            limit: 21,
        };
        let (sql, params) = listing.statement();
        assert!(
            sql.contains("WHERE api_key_id = $1 AND purged_at IS NULL"),
            "{sql}"
        );
        assert!(sql.contains("status IN ($2, $3)"), "{sql}");
        assert!(sql.contains("created_at > $4"), "{sql}");
        assert!(sql.contains("(created_at, id) < ($5, $6)"), "{sql}");
        assert!(
            sql.ends_with("ORDER BY created_at DESC, id DESC LIMIT $7"),
            "{sql}"
        );
        assert_eq!(
            params,
            [
                "k1",
                "queued",
                "failed",
                &at.to_string(),
                &at.to_string(),
                "job-9"
            ]
        );
        let visitor = Listing {
            owner: Owner::Visitor("v"),
            statuses: Vec::new(),
            after: None,
            ..listing
        };
        let (sql, params) = visitor.statement();
        assert!(
            sql.contains("WHERE visitor = $1") && !sql.contains("status IN"),
            "{sql}"
        );
        assert_eq!(params.len(), 2);
    }
}
