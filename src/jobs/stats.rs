//! The figures of the operator dashboard, read from the job rows: queue depths, throughput per
//! minute and the lists of failed, cancelled and open jobs.
//!
//! Every query is driven by one of the two `(status, updated_at)` indexes, `jobs_open` (where
//! `finished_at IS NULL`) and `jobs_finished` (the others), so the dashboard costs a few index
//! range scans however many finished jobs the table holds; none reads the stored reports.

use crate::db::Db;
use crate::jobs::model::{self, JobRow, Status};
use crate::jobs::queue::QueueName;
use crate::on_db;
use crate::timestamp::Timestamp;

/// Queued and running jobs of one queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Depth {
    pub queue: QueueName,
    pub queued: i64,
    pub running: i64,
    /// `updated_at` of the queued job that has waited longest (when it was queued last).
    pub oldest_queued_at: Option<Timestamp>,
}

/// The statement of [`depths`]: open jobs by queue and status, through `jobs_open`.
pub const DEPTHS: &str = "SELECT queue, status, COUNT(*), MIN(updated_at) FROM sentiq_jobs \
     WHERE status IN ('queued', 'running') AND finished_at IS NULL GROUP BY queue, status";

/// Queued and running jobs of every queue (zeros included).
pub async fn depths(db: &Db) -> Result<Vec<Depth>, sqlx::Error> {
    let rows: Vec<(QueueName, Status, i64, Option<Timestamp>)> =
        on_db!(db, |pool| { sqlx::query_as(DEPTHS).fetch_all(pool).await? });
    let mut out: Vec<Depth> = QueueName::ALL
        .into_iter()
        .map(|queue| Depth {
            queue,
            queued: 0,
            running: 0,
            oldest_queued_at: None,
        })
        .collect();
    for (queue, status, n, oldest) in rows {
        let Some(depth) = out.iter_mut().find(|d| d.queue == queue) else {
            continue;
        };
        if status == Status::Queued {
            depth.queued = n;
            depth.oldest_queued_at = oldest;
        } else {
            depth.running = n;
        }
    }
    Ok(out)
}

/// Jobs that ended in one minute.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Minute {
    /// `YYYY-MM-DDTHH:MM` (UTC), the first 16 characters of the stored times in that minute.
    pub minute: String,
    pub succeeded: i64,
    pub failed: i64,
    pub cancelled: i64,
}

impl Minute {
    pub fn total(&self) -> i64 {
        self.succeeded + self.failed + self.cancelled
    }
}

/// The statement of [`throughput`] (`$1`: the first minute's start). A row's `updated_at` is
/// never older than its `finished_at` (both are set together, and later writes only move
/// `updated_at` on), so the range on `updated_at` in `jobs_finished` finds every row finished
/// since `$1` without scanning older ones.
pub const THROUGHPUT: &str = "SELECT substr(finished_at, 1, 16), status, COUNT(*) FROM sentiq_jobs \
     WHERE status IN ('succeeded', 'failed', 'cancelled') AND updated_at >= $1 \
     AND finished_at >= $1 GROUP BY 1, 2";

/// Jobs that ended (by `finished_at`) in each of the `minutes` whole minutes up to and
/// including the current one, oldest first; minutes without any are zeros.
pub async fn throughput(db: &Db, minutes: u32) -> Result<Vec<Minute>, sqlx::Error> {
    let now = chrono::Utc::now();
    let mut out: Vec<Minute> = (0..i64::from(minutes.max(1)))
        .rev()
        .map(|back| Minute {
            minute: (now - chrono::Duration::minutes(back))
                .format("%Y-%m-%dT%H:%M")
                .to_string(),
            ..Minute::default()
        })
        .collect();
    let since = format!("{}:00.000Z", out[0].minute);
    let rows: Vec<(String, String, i64)> = on_db!(db, |pool| {
        sqlx::query_as(THROUGHPUT)
            .bind(&since)
            .fetch_all(pool)
            .await?
    });
    for (minute, status, n) in rows {
        if let Some(m) = out.iter_mut().find(|m| m.minute == minute) {
            match status.as_str() {
                "succeeded" => m.succeeded = n,
                "failed" => m.failed = n,
                _ => m.cancelled = n,
            }
        }
    }
    Ok(out)
}

/// The `limit` jobs of `status` changed last, newest first (rows without input; the dashboard
/// lists only unfinished, failed and cancelled jobs, which have no report either).
pub async fn latest(db: &Db, status: &str, limit: i64) -> Result<Vec<JobRow>, sqlx::Error> {
    on_db!(db, |pool| {
        let statement = match status {
            "queued" | "running" => model::LATEST_OPEN_WITH_STATUS,
            _ => model::LATEST_FINISHED_WITH_STATUS,
        };
        sqlx::query_as::<_, JobRow>(statement)
            .bind(status)
            .bind(limit)
            .fetch_all(pool)
            .await
    })
}

/// Up to `limit` open jobs: the running ones first, then the queued ones, each newest first.
pub async fn open_jobs(db: &Db, limit: i64) -> Result<Vec<JobRow>, sqlx::Error> {
    let mut jobs = latest(db, "running", limit).await?;
    let room = limit - jobs.len() as i64;
    if room > 0 {
        jobs.extend(latest(db, "queued", room).await?);
    }
    Ok(jobs)
}

/// Bytes the database holds, by what holds them, from figures the database keeps anyway
/// (nothing is scanned): on PostgreSQL each table with its indexes and TOAST data; on SQLite
/// the file, and the part of it that is free (pages the pruner has not given back yet). A
/// succeeded job holds its items and report; a failed or cancelled one its input until it
/// expires.
pub async fn stored_bytes(db: &Db) -> Result<Vec<(&'static str, i64)>, sqlx::Error> {
    Ok(match db {
        Db::Sqlite(pool) => {
            let (pages, free, size): (i64, i64, i64) = sqlx::query_as(
                "SELECT page_count, freelist_count, page_size FROM pragma_page_count(), \
                 pragma_freelist_count(), pragma_page_size()",
            )
            .fetch_one(pool)
            .await?;
            vec![
                ("database file", pages * size),
                ("of which free", free * size),
            ]
        }
        Db::Postgres(pool) => {
            let sizes: (i64, i64, i64, i64) = sqlx::query_as(
                "SELECT pg_total_relation_size('sentiq_jobs'), \
                 pg_total_relation_size('job_inputs'), \
                 pg_total_relation_size('job_item_chunks'), \
                 pg_total_relation_size('job_transitions')",
            )
            .fetch_one(pool)
            .await?;
            vec![
                ("jobs and reports", sizes.0),
                ("inputs", sizes.1),
                ("items", sizes.2),
                ("transition log", sizes.3),
            ]
        }
    })
}

/// Tombstones (jobs whose data was removed) by reason, through the partial index `jobs_purged`.
pub async fn tombstones(db: &Db) -> Result<Vec<(String, i64)>, sqlx::Error> {
    on_db!(db, |pool| {
        sqlx::query_as(
            "SELECT purge_reason, COUNT(*) FROM sentiq_jobs WHERE purged_at IS NOT NULL \
             GROUP BY purge_reason ORDER BY 1",
        )
        .fetch_all(pool)
        .await
    })
}
