//! The embedded store: SQLite with the apalis-sqlite queue in the same file, one process.
//!
//! A state change that makes a job runnable and its queue entry go in one transaction (both
//! commit or neither), under this process's SQLite write gate ([`crate::db::write_permit`]);
//! idle workers are woken through in-process [`Wakers`].

use std::time::Duration;

use sqlx::SqlitePool;
use tokio::task::JoinHandle;

use super::StoreError;
use crate::db::Db;
use crate::jobs::fair;
use crate::jobs::model::{self, Claimed, Finish, JobRow, NewJob, StaleJob};
use crate::jobs::queue::{self, QueueError, QueueName, Wakers};

#[derive(Clone, Debug)]
pub struct Embedded {
    pool: SqlitePool,
    db: Db,
    wakers: Wakers,
    /// How long a succeeded job's data is kept (`RESULT_TTL`; None: forever).
    result_ttl: Option<Duration>,
}

impl Embedded {
    pub(super) fn new(pool: SqlitePool, wakers: Wakers, result_ttl: Option<Duration>) -> Embedded {
        Embedded {
            db: Db::Sqlite(pool.clone()),
            pool,
            wakers,
            result_ttl,
        }
    }

    pub(super) fn db(&self) -> &Db {
        &self.db
    }

    pub(super) fn wakers(&self) -> &Wakers {
        &self.wakers
    }

    /// The SQLite pool the apalis-sqlite workers fetch from.
    pub(super) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    pub(super) async fn write_new(&self, jobs: &[&NewJob]) -> Result<Vec<bool>, StoreError> {
        let _write = crate::db::write_permit().await;
        let mut tx = self.pool.begin().await?;
        let fresh = model::insert_new_in(&mut tx, jobs).await?;
        let written: Vec<&NewJob> = jobs
            .iter()
            .zip(&fresh)
            .filter(|(_, f)| **f)
            .map(|(j, _)| *j)
            .collect();
        let held = fair::hold_beyond_limits(&mut tx, &written).await?;
        let queued: Vec<&NewJob> = written
            .iter()
            .zip(&held)
            .filter(|(_, h)| !**h)
            .map(|(j, _)| *j)
            .collect();
        let priorities = fair::priorities(&mut tx, &queued).await?;
        for (job, priority) in queued.iter().zip(priorities) {
            enqueue(&mut tx, job.queue, &job.id.to_string(), None, priority).await?;
        }
        tx.commit().await?;
        Ok(fresh)
    }

    pub(super) async fn announce_new(&self, jobs: &[&NewJob]) {
        for job in jobs {
            self.wakers.wake(job.queue);
        }
    }

    /// SQLite has one writer: a second batch would only wait for the first, and batches
    /// already gather while it writes; a linger would only add latency.
    pub(super) fn writers_and_linger(&self) -> (usize, Duration) {
        (1, Duration::ZERO)
    }

    pub(super) async fn claim(&self, id: &str) -> Result<Option<Claimed>, StoreError> {
        Ok(model::claim_with_input(&self.db, id).await?)
    }

    /// The owners' order is the entries' priority; only a key with `max_running` has
    /// something to give back: its held jobs, as far as the limit allows.
    pub(super) async fn delivery_ended(&self, id: &str) {
        let released = match fair::limit_of_job(&self.pool, id).await {
            Ok(Some((key, limit))) => self.release_held(&key, limit).await,
            Ok(None) => Ok(()),
            Err(e) => Err(e.into()),
        };
        if let Err(e) = released {
            tracing::warn!(job_id = %id, error = %e, "held jobs not released; the reconciler will");
        }
    }

    /// Release what keys hold beyond their limits (the safety net: a release that failed, a
    /// limit raised or lifted).
    pub(super) async fn feed(&self) -> Result<(), StoreError> {
        for (key, limit) in fair::keys_holding(&self.pool).await? {
            self.release_held(&key, limit.unwrap_or(i64::MAX)).await?;
        }
        Ok(())
    }

    async fn release_held(&self, key: &str, limit: i64) -> Result<(), StoreError> {
        let _write = crate::db::write_permit().await;
        let mut tx = self.pool.begin().await?;
        let released = fair::release_held(&mut tx, key, limit).await?;
        if released.is_empty() {
            return Ok(());
        }
        for (id, queue) in &released {
            enqueue(&mut tx, *queue, id, None, fair::AHEAD).await?;
        }
        tx.commit().await?;
        for (_, queue) in released {
            self.wakers.wake(queue);
        }
        Ok(())
    }

    pub(super) async fn finish(&self, run: Finish) -> Result<bool, StoreError> {
        let (id, attempt, ttl) = (&run.id, run.attempt, self.result_ttl);
        Ok(model::finish(&self.db, id, attempt, &run.report_json, &run.items, ttl).await?)
    }

    pub(super) async fn requeue(
        &self,
        job: &JobRow,
        delay: Option<Duration>,
    ) -> Result<bool, StoreError> {
        let _write = crate::db::write_permit().await;
        let mut tx = self.pool.begin().await?;
        if !model::requeue_in(&mut tx, &job.id, job.attempts).await? {
            return Ok(false);
        }
        enqueue(&mut tx, job.queue, &job.id, delay, fair::AHEAD).await?;
        tx.commit().await?;
        if delay.is_none() {
            self.wakers.wake(job.queue);
        }
        Ok(true)
    }

    pub(super) async fn retry(&self, id: &str) -> Result<Option<JobRow>, StoreError> {
        let _write = crate::db::write_permit().await;
        let mut tx = self.pool.begin().await?;
        let Some(job) = model::retry_in(&mut tx, id).await? else {
            return Ok(None);
        };
        enqueue(&mut tx, job.queue, &job.id, None, fair::AHEAD).await?;
        tx.commit().await?;
        self.wakers.wake(job.queue);
        Ok(Some(job))
    }

    pub(super) async fn reconcile(&self, stale_before: &str) -> Result<Vec<StaleJob>, StoreError> {
        let mut done = Vec::new();
        for job in model::stale_embedded(&self.pool, stale_before).await? {
            let _write = crate::db::write_permit().await;
            let mut tx = self.pool.begin().await?;
            if model::reset_stale_in(&mut tx, &job, stale_before).await? {
                enqueue(&mut tx, job.queue, &job.id, None, fair::AHEAD).await?;
                tx.commit().await?;
                self.wakers.wake(job.queue);
                done.push(job);
            }
        }
        Ok(done)
    }

    pub(super) async fn vacuum(&self) -> Result<u64, StoreError> {
        Ok(queue::vacuum_embedded(&self.pool).await?)
    }

    /// The clean-up is a few short DELETEs on the single SQLite writer: it keeps the
    /// reconciler's pace.
    pub(super) fn vacuum_every(&self, reconcile_every: Duration) -> Duration {
        reconcile_every
    }

    /// apalis-sqlite keeps nothing per worker name beyond its registration.
    pub(super) async fn forget_dead_workers(&self) -> Result<u64, StoreError> {
        Ok(0)
    }

    pub(super) async fn ping_queue(&self) -> Result<(), StoreError> {
        Ok(())
    }

    pub(super) async fn entry_counts(&self) -> Result<Vec<(String, String, i64)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT job_type, LOWER(status), COUNT(*) FROM Jobs \
             GROUP BY job_type, status ORDER BY 1, 2",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Every push is made in this process, which wakes its workers itself.
    pub(super) fn listen_for_wakes(&self, _queues: Vec<QueueName>) -> Option<JoinHandle<()>> {
        None
    }
}

/// Push a job id onto `queue` inside the caller's transaction.
async fn enqueue(
    tx: &mut sqlx::SqliteConnection,
    queue: QueueName,
    job_id: &str,
    delay: Option<Duration>,
    priority: usize,
) -> Result<(), QueueError> {
    queue::enqueue(tx, queue, job_id, delay, priority)
        .await
        .map_err(QueueError::Embedded)
}
