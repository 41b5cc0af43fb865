//! Retention and deletion: the SQL that turns jobs into tombstones, removes tombstones, and
//! gives the freed space back; written once for both dialects. Only the job store calls it
//! ([`crate::jobs::store::JobStore::prune`], [`crate::jobs::store::JobStore::delete`]).
//!
//! A final job keeps its input (failed and cancelled jobs only: a succeeded job's goes when it
//! succeeds), items and report until its `expires_at`. Purging it removes them and blanks the
//! columns that hold any of the submitted text (title, column name, error message, report), in
//! one transaction; the row stays as a tombstone with `purged_at` and `purge_reason`, so the
//! job's routes can answer 410 Gone instead of 404, until `TOMBSTONE_TTL` has passed and the
//! row goes too (its transition log with it, by the schema's `job_deleted` trigger).
//!
//! Every write is conditional (on `purged_at IS NULL`, and for expiry on `expires_at`), so any
//! number of workers may prune at once: each job is purged by one of them.

use std::time::Duration;

use super::model::PurgeReason;
use crate::db::Db;
use crate::on_db;
use crate::timestamp::Timestamp;

/// Most jobs purged in one transaction.
pub const PURGE_BATCH: i64 = 100;
/// Most input bytes of the jobs purged in one transaction (a larger job is purged alone): the
/// items and inputs deleted are about the size of the inputs, and SQLite's one writer lock is
/// held while they go.
pub const PURGE_BATCH_BYTES: i64 = 16 << 20;
/// Most tombstones removed per statement.
pub const TOMBSTONE_BATCH: i64 = 500;
/// Most pages (of 4 KiB) of a SQLite file's free list given back per statement.
pub const RECLAIM_PAGES: i64 = 2048;

/// The UPDATE that turns a final job into a tombstone (`$1` now, `$2` the reason, `$3` the id):
/// everything that holds any of the submitted text is blanked.
macro_rules! purge {
    ($condition:literal) => {
        concat!(
            "UPDATE sentiq_jobs SET purged_at = $1, purge_reason = $2, result = NULL, \
             title = '', column_name = NULL, analysis_options = NULL, error_message = NULL, \
             version = version + 1 \
             WHERE id = $3 AND purged_at IS NULL \
             AND status IN ('succeeded', 'failed', 'cancelled')",
            $condition
        )
    };
}

/// Purge job `$id` on a connection or transaction of either dialect: the tombstone, then its
/// input and items. Evaluates to whether this call made the tombstone.
macro_rules! purge_on {
    ($conn:expr, $statement:expr, $now:expr, $reason:expr, $id:expr) => {{
        let purged = sqlx::query($statement)
            .bind($now)
            .bind($reason.as_str())
            .bind($id)
            .execute(&mut *$conn)
            .await?
            .rows_affected()
            == 1;
        if purged {
            for table in [DELETE_INPUT, DELETE_CHUNKS] {
                sqlx::query(table).bind($id).execute(&mut *$conn).await?;
            }
        }
        purged
    }};
}

const PURGE_EXPIRED: &str = purge!(" AND expires_at <= $1");
const PURGE_DELETED: &str = purge!("");
const DELETE_INPUT: &str = "DELETE FROM job_inputs WHERE job_id = $1";
const DELETE_CHUNKS: &str = "DELETE FROM job_item_chunks WHERE job_id = $1";

/// Purge a final job at its owner's request, its input, items and report at once. False when
/// it is not final (the caller cancels it first), already a tombstone, or unknown.
pub async fn purge_deleted(db: &Db, id: &str) -> Result<bool, sqlx::Error> {
    let _write = db.write_permit().await;
    let now = Timestamp::now().to_string();
    on_db!(db, |pool| {
        let mut tx = pool.begin().await?;
        let purged = purge_on!(tx, PURGE_DELETED, &now, PurgeReason::Deleted, id);
        tx.commit().await?;
        Ok(purged)
    })
}

/// Purge a batch of jobs whose data expired by now, oldest expiry first: at most
/// [`PURGE_BATCH`] jobs and, past the first, [`PURGE_BATCH_BYTES`] of input, in one short
/// transaction. Returns the ids purged (fewer than [`PURGE_BATCH`] when no more are due, or
/// another pruner took some).
pub async fn purge_expired(db: &Db) -> Result<Vec<String>, sqlx::Error> {
    let now = Timestamp::now().to_string();
    let due: Vec<(String, i64)> = on_db!(db, |pool| {
        sqlx::query_as(
            "SELECT id, input_bytes FROM sentiq_jobs WHERE expires_at IS NOT NULL \
             AND purged_at IS NULL AND expires_at <= $1 ORDER BY expires_at LIMIT $2",
        )
        .bind(&now)
        .bind(PURGE_BATCH)
        .fetch_all(pool)
        .await?
    });
    let mut bytes = 0;
    let batch: Vec<String> = due
        .into_iter()
        .take_while(|(_, size)| {
            bytes += size;
            bytes == *size || bytes <= PURGE_BATCH_BYTES
        })
        .map(|(id, _)| id)
        .collect();
    if batch.is_empty() {
        return Ok(batch);
    }
    let _write = db.write_permit().await;
    on_db!(db, |pool| {
        let mut tx = pool.begin().await?;
        let mut purged = Vec::with_capacity(batch.len());
        for id in batch {
            if purge_on!(tx, PURGE_EXPIRED, &now, PurgeReason::Expired, &id) {
                purged.push(id);
            }
        }
        tx.commit().await?;
        Ok(purged)
    })
}

/// Delete up to [`TOMBSTONE_BATCH`] tombstones older than `keep` (and, by the schema's
/// trigger, their transition logs). Returns how many.
pub async fn remove_tombstones(db: &Db, keep: Duration) -> Result<u64, sqlx::Error> {
    let before = Timestamp::ago(keep).to_string();
    let _write = db.write_permit().await;
    Ok(on_db!(db, |pool| {
        sqlx::query(
            "DELETE FROM sentiq_jobs WHERE id IN (SELECT id FROM sentiq_jobs \
             WHERE purged_at IS NOT NULL AND purged_at <= $1 ORDER BY purged_at LIMIT $2)",
        )
        .bind(&before)
        .bind(TOMBSTONE_BATCH)
        .execute(pool)
        .await?
        .rows_affected()
    }))
}

/// SQLite: give up to [`RECLAIM_PAGES`] free pages back to the file system (the database is
/// opened with `auto_vacuum = INCREMENTAL`, see [`crate::db::connect`]); returns how many pages
/// were free before. PostgreSQL reuses the space of deleted rows itself once autovacuum has
/// seen them: nothing to do.
pub async fn reclaim(db: &Db) -> Result<i64, sqlx::Error> {
    let Db::Sqlite(pool) = db else {
        return Ok(0);
    };
    let free: i64 = sqlx::query_scalar("PRAGMA freelist_count")
        .fetch_one(pool)
        .await?;
    if free > 0 {
        let _write = db.write_permit().await;
        // The count is ours, not input: the statement text is always one of these.
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "PRAGMA incremental_vacuum({})",
            free.min(RECLAIM_PAGES)
        )))
        .execute(pool)
        .await?;
    }
    Ok(free)
}
