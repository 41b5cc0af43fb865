//! The job store: every change of a job's state, together with its queue side effect.
//!
//! The job row is the record and the queue entry only says "look at job X", so a state change
//! that makes a job runnable (submit, retry, requeue, reconcile) must also give it a queue
//! entry, and a change anyone may be waiting for must signal the event streams. How that is
//! done depends on the topology, and only here:
//!
//! - [`Embedded`]: SQLite with the apalis-sqlite queue in the same file. The row and its queue
//!   entry commit in one transaction; idle workers are woken in-process.
//! - [`Distributed`]: PostgreSQL (or SQLite) with the apalis-redis queue. The row commits first,
//!   then the entry is pushed (a lost push is the reconciler's); the worker's claims and
//!   finishes are group-committed; wake-ups and change signals cross processes through Redis
//!   pub/sub.
//!
//! Callers (web handlers, pages, admin, the worker) hold a [`JobStore`] and never see which one
//! it is. The pair "embedded queue on PostgreSQL" cannot be built: [`Embedded`] takes a SQLite
//! pool, and start-up refuses the configuration before any store exists.

pub mod distributed;
mod embedded;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;

pub use distributed::Distributed;
pub use embedded::Embedded;

use super::events::JobEvents;
use super::idempotency::{self, KeyRecord};
use super::model::{self, Cancel, Claimed, Finish, ItemRow, JobRow, NewJob, PurgeReason, StaleJob};
use super::queue::{QueueError, QueueName, RedisQueue, Wakers};
use super::retention;
use super::submitter::{Submitted, Submitter};
use super::webhooks::{self, Attempted, Delivery};
use crate::config::Retention;
use crate::db::Db;
use crate::timestamp::Timestamp;

/// Why a store operation failed: the database, or the queue. Neither hides inside the other,
/// so a bug in enqueueing is never mistaken for an outage.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("queue: {0}")]
    Queue(#[from] QueueError),
    /// Concurrent changes kept an operation from settling; trying again later may work.
    #[error("{0}")]
    Busy(&'static str),
}

impl From<redis::RedisError> for StoreError {
    fn from(e: redis::RedisError) -> Self {
        StoreError::Queue(QueueError::Redis(e))
    }
}

impl StoreError {
    /// The database cannot grow (its disk is full): nothing of the operation was written.
    pub fn is_storage_full(&self) -> bool {
        match self {
            StoreError::Db(e) => crate::db::is_storage_full(e),
            StoreError::Queue(QueueError::Embedded(apalis_sqlite::Error::Database(e))) => {
                crate::db::is_storage_full(e)
            }
            _ => false,
        }
    }

    /// The database or the queue is not reachable right now (worth a 503 and a retry), as
    /// opposed to a bug or bad data.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Db(e) => crate::db::is_unavailable(e),
            StoreError::Queue(e) => e.is_unavailable(),
            StoreError::Busy(_) => true,
        }
    }
}

/// Where jobs live and how they are queued: one of the two topologies.
#[derive(Clone, Debug)]
pub struct JobStore {
    topology: Topology,
    events: JobEvents,
    submitter: Submitter,
    /// Wakes this process's webhook delivery loop when a job with a webhook ends here.
    deliveries: Arc<Notify>,
    retention: Retention,
}

/// Outcome of [`JobStore::delete`].
#[derive(Debug)]
pub enum Delete {
    /// The job is a tombstone now; `cancelled` holds it when it had to be cancelled first.
    Deleted {
        cancelled: Option<Box<JobRow>>,
    },
    /// It was a tombstone already (deleted, or expired): nothing left to remove.
    AlreadyGone(PurgeReason),
    NotFound,
}

/// What one [`JobStore::prune`] removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Jobs whose data expired and that are tombstones now.
    pub expired: u64,
    /// Tombstones past `TOMBSTONE_TTL`, removed.
    pub tombstones: u64,
    /// Parts of uploads that never became a job.
    pub abandoned_parts: u64,
}

/// The queue backend the apalis workers fetch from: apalis builds a different worker type for
/// each, so the worker's registration needs the concrete one.
pub enum Backend {
    Sqlite(sqlx::SqlitePool),
    Redis(Box<RedisQueue>),
}

/// The implementation per topology (only the submitter, a part of the store, sees it).
#[derive(Clone, Debug)]
pub(crate) enum Topology {
    Embedded(Embedded),
    Distributed(Box<Distributed>),
}

/// Run the same method on whichever implementation `$topology` holds.
macro_rules! on_topology {
    ($topology:expr, |$store:ident| $body:expr) => {
        match $topology {
            Topology::Embedded($store) => $body,
            Topology::Distributed($store) => $body,
        }
    };
}

impl JobStore {
    /// The embedded store on a SQLite database (must be called inside a tokio runtime: the
    /// submission writer starts here).
    pub fn embedded(pool: sqlx::SqlitePool, retention: Retention) -> JobStore {
        let wakers = Wakers::default();
        JobStore::start(
            Topology::Embedded(Embedded::new(pool, wakers, retention.result_ttl)),
            JobEvents::default(),
            retention,
        )
    }

    /// The distributed store: `db` for the rows, Redis for the queue, the wake-ups and the
    /// change signals (must be called inside a tokio runtime).
    pub fn distributed(db: Db, redis: RedisQueue, retention: Retention) -> JobStore {
        let events = JobEvents::with_redis(redis.clone());
        let store = Distributed::new(db, redis, Wakers::default(), retention.result_ttl);
        JobStore::start(Topology::Distributed(Box::new(store)), events, retention)
    }

    fn start(topology: Topology, events: JobEvents, retention: Retention) -> JobStore {
        let submitter = Submitter::start(topology.clone());
        JobStore {
            topology,
            events,
            submitter,
            deliveries: Arc::default(),
            retention,
        }
    }

    /// How long this store keeps data (`RESULT_TTL`, `TOMBSTONE_TTL`) and prunes.
    pub fn retention(&self) -> Retention {
        self.retention
    }

    /// The database, for reads (the row layer, [`model`], takes it).
    pub fn db(&self) -> &Db {
        on_topology!(&self.topology, |s| s.db())
    }

    /// The change signals of the event streams.
    pub fn events(&self) -> &JobEvents {
        &self.events
    }

    /// The per-queue wake-ups of this process's idle workers.
    pub fn wakers(&self) -> &Wakers {
        on_topology!(&self.topology, |s| s.wakers())
    }

    /// Where this process's apalis workers fetch from.
    pub fn backend(&self) -> Backend {
        match &self.topology {
            Topology::Embedded(s) => Backend::Sqlite(s.pool().clone()),
            Topology::Distributed(s) => Backend::Redis(Box::new(s.redis().clone())),
        }
    }

    /// Write a new job: row, input and queue entry, group-committed with the submissions that
    /// arrive at the same time ([`crate::jobs::submitter`]). Returns once they are committed
    /// (and, with Redis, once the push has been answered or has failed: a lost push is the
    /// reconciler's). A job whose idempotency key another job holds is not written
    /// ([`Submitted::KeyTaken`]); [`JobStore::idempotency_record`] then says which job that is.
    pub async fn submit(&self, job: NewJob) -> Result<Submitted, StoreError> {
        self.submitter.submit(job).await
    }

    /// The live record of an idempotency key (`scope_key` as in [`KeyClaim`]).
    pub async fn idempotency_record(
        &self,
        scope_key: &str,
    ) -> Result<Option<KeyRecord>, StoreError> {
        Ok(idempotency::record(self.db(), scope_key).await?)
    }

    /// Forget up to `limit` expired idempotency keys. Returns how many.
    pub async fn prune_idempotency_keys(&self, limit: i64) -> Result<u64, StoreError> {
        Ok(idempotency::prune(self.db(), limit).await?)
    }

    /// `queued → running` for one delivery of job `id`, with its input (a large input may be
    /// left out, see [`model::CLAIMED_INPUT_MAX_BYTES`]). None when the job is not queued.
    pub async fn claim(&self, id: &str) -> Result<Option<Claimed>, StoreError> {
        let claimed = on_topology!(&self.topology, |s| s.claim(id).await)?;
        if claimed.is_some() {
            self.events.changed(id);
        }
        Ok(claimed)
    }

    /// A delivery of job `id` ended (it ran, was skipped, or its job was final or gone) and
    /// left no queue entry of its own: its owner's share of the workers is free again
    /// ([`crate::jobs::fair`]). Every delivery but one that re-enqueued its job ends with this.
    pub async fn delivery_ended(&self, id: &str) {
        on_topology!(&self.topology, |s| s.delivery_ended(id).await)
    }

    /// Move waiting entries into the queues where there is room ([`crate::jobs::fair`]): the
    /// periodic safety net under the moves that submissions and ended deliveries make.
    pub async fn feed(&self) -> Result<(), StoreError> {
        on_topology!(&self.topology, |s| s.feed().await)
    }

    /// Refresh the lease of run `attempt`. False when the run no longer owns the job.
    pub async fn touch(&self, id: &str, attempt: i64) -> Result<bool, StoreError> {
        Ok(model::touch(self.db(), id, attempt).await?)
    }

    /// Record run `attempt`'s progress. False when the run no longer owns the job.
    pub async fn progress(
        &self,
        id: &str,
        attempt: i64,
        done: u64,
        total: u64,
    ) -> Result<bool, StoreError> {
        let written = model::set_progress(self.db(), id, attempt, done, total).await?;
        if written {
            self.events.changed(id);
        }
        Ok(written)
    }

    /// Store a batch of run `attempt`'s items. False when the run no longer owns the job.
    pub async fn store_items(
        &self,
        id: &str,
        attempt: i64,
        items: &[ItemRow],
    ) -> Result<bool, StoreError> {
        Ok(model::insert_items(self.db(), id, attempt, items).await?)
    }

    /// How many items a run should hand to [`JobStore::store_items`] at once.
    pub fn items_per_write(&self) -> usize {
        model::items_per_transaction(self.db())
    }

    /// Remove the items of job `id` unless a run other than `attempt` owns it now.
    pub async fn delete_items(&self, id: &str, attempt: i64) -> Result<(), StoreError> {
        Ok(model::delete_items(self.db(), id, attempt).await?)
    }

    /// `running → succeeded` for run `run.attempt`, with its report and last items. False when
    /// the run no longer owns the job (cancelled or taken over meanwhile).
    pub async fn finish(&self, run: Finish) -> Result<bool, StoreError> {
        let id = run.id.clone();
        let finished = on_topology!(&self.topology, |s| s.finish(run).await)?;
        self.events.changed(&id);
        Ok(finished)
    }

    /// `running → failed` for run `attempt`, with a code and a message a person understands
    /// (the job expires after `RESULT_TTL`). False when the run no longer owns the job.
    pub async fn fail(
        &self,
        id: &str,
        attempt: i64,
        code: &str,
        message: &str,
    ) -> Result<bool, StoreError> {
        let ttl = self.retention.result_ttl;
        let failed = model::fail(self.db(), id, attempt, code, message, ttl).await?;
        self.events.changed(id);
        Ok(failed)
    }

    /// `running → queued` for run `job.attempts`, with a new queue entry after `delay` (a retry
    /// after a transient error, or a job handed back at shutdown). False when the run no longer
    /// owned the job.
    pub async fn requeue(&self, job: &JobRow, delay: Option<Duration>) -> Result<bool, StoreError> {
        let requeued = on_topology!(&self.topology, |s| s.requeue(job, delay).await)?;
        self.events.changed(&job.id);
        Ok(requeued)
    }

    /// `queued | running → cancelled` (the job expires after `RESULT_TTL`). A run of it stops
    /// at its next chunk (this process's is told by the caller; others find out from their
    /// fenced writes and their lease).
    pub async fn cancel(&self, id: &str) -> Result<Cancel, StoreError> {
        let cancel = model::cancel(self.db(), id, self.retention.result_ttl).await?;
        if let Cancel::Cancelled(job) = &cancel {
            self.events.changed(id);
            if job.webhook_url.is_some() {
                self.wake_deliveries();
            }
        }
        Ok(cancel)
    }

    /// Delete job `id` at its owner's request: cancel it when it is queued or running (its run
    /// stops as after [`JobStore::cancel`]), then remove its input, items and report in one
    /// transaction; the row stays a tombstone for `TOMBSTONE_TTL`. A run that is still
    /// stopping can write nothing more: every write of a run requires the job to be running.
    pub async fn delete(&self, id: &str) -> Result<Delete, StoreError> {
        let mut cancelled = None;
        // A few rounds at most: an operator may retry the job between the cancel and the purge.
        for _ in 0..3 {
            if retention::purge_deleted(self.db(), id).await? {
                self.events.changed(id);
                return Ok(Delete::Deleted { cancelled });
            }
            match self.cancel(id).await? {
                Cancel::Cancelled(job) => cancelled = Some(job),
                Cancel::NotFound => return Ok(Delete::NotFound),
                Cancel::AlreadyFinal(job) => {
                    if let Some(reason) = job.purged() {
                        return Ok(Delete::AlreadyGone(reason));
                    }
                }
            }
        }
        Err(StoreError::Busy(
            "the job kept changing while it was being deleted",
        ))
    }

    /// One round of the pruner: purge the jobs whose data expired, in batches of
    /// [`retention::PURGE_BATCH`] jobs (each one short transaction) until none is due; remove
    /// tombstones older than `TOMBSTONE_TTL` likewise; then (SQLite) give some of the freed
    /// pages back to the file system. Any number of workers may prune at once.
    pub async fn prune(&self) -> Result<Pruned, StoreError> {
        let mut pruned = Pruned::default();
        loop {
            let ids = retention::purge_expired(self.db()).await?;
            for id in &ids {
                self.events.changed(id);
            }
            pruned.expired += ids.len() as u64;
            if (ids.len() as i64) < retention::PURGE_BATCH {
                break;
            }
            tokio::task::yield_now().await;
        }
        loop {
            let removed =
                retention::remove_tombstones(self.db(), self.retention.tombstone_ttl).await?;
            pruned.tombstones += removed;
            if (removed as i64) < retention::TOMBSTONE_BATCH {
                break;
            }
        }
        pruned.abandoned_parts =
            super::parts::sweep(self.db(), super::parts::ABANDONED_AFTER).await?;
        retention::reclaim(self.db()).await?;
        Ok(pruned)
    }

    /// Write part `seq` of an upload that will be job `id`'s input ([`super::parts`]): before
    /// the job exists, so nothing of it is visible until [`JobStore::submit`] writes the row.
    pub async fn stage_input_part(
        &self,
        id: &str,
        seq: u32,
        body: &[u8],
    ) -> Result<(), StoreError> {
        Ok(super::parts::write(self.db(), id, seq, body).await?)
    }

    /// Delete the parts written for an upload that did not become job `id` (refused, or its
    /// client went away). The parts of a job that exists are kept.
    pub async fn discard_staged_input(&self, id: &str) -> Result<u64, StoreError> {
        Ok(super::parts::discard(self.db(), id).await?)
    }

    /// `failed | cancelled → queued` with a new queue entry and the full attempt budget (an
    /// operator's retry). None when the job is not retryable (unknown, or in another state).
    pub async fn retry(&self, id: &str) -> Result<Option<JobRow>, StoreError> {
        let job = on_topology!(&self.topology, |s| s.retry(id).await)?;
        if let Some(job) = &job {
            self.events.changed(&job.id);
        }
        Ok(job)
    }

    /// Give every stale job a new queue entry: running jobs untouched for a `lease` (their
    /// worker died) and queued jobs as old whose queue entry is gone (the push failed, or Redis
    /// lost its data). Every reset is conditional, so concurrent reconcilers in several
    /// processes re-enqueue a job once. Returns the jobs re-enqueued.
    pub async fn reconcile(&self, lease: Duration) -> Result<Vec<StaleJob>, StoreError> {
        let stale_before = stale_before(lease);
        let jobs = on_topology!(&self.topology, |s| s.reconcile(&stale_before).await)?;
        for job in &jobs {
            self.events.changed(&job.id);
        }
        Ok(jobs)
    }

    /// Lease up to `limit` due webhook deliveries for `lease`, each with one more attempt
    /// (its fencing token); none is leased to two attempts at once.
    pub async fn claim_deliveries(
        &self,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<Delivery>, StoreError> {
        let until = Timestamp::from_now(lease);
        let claimed = webhooks::claim_due(self.db(), limit as i64, until).await?;
        for d in &claimed {
            self.events.changed(&d.job_id);
        }
        Ok(claimed)
    }

    /// Record how an attempt at a delivery of job `job_id`'s event ended. False when the
    /// attempt had lost its lease to another (nothing written).
    pub async fn record_delivery(
        &self,
        job_id: &str,
        attempted: &Attempted,
    ) -> Result<bool, StoreError> {
        let recorded = webhooks::record(self.db(), attempted).await?;
        if recorded {
            self.events.changed(job_id);
        }
        Ok(recorded)
    }

    /// An operator's "Send again": the delivery is due now with the whole retry schedule
    /// ahead. None when it is delivered, in flight or unknown.
    pub async fn send_delivery_again(&self, id: &str) -> Result<Option<Delivery>, StoreError> {
        let delivery = webhooks::send_again(self.db(), id).await?;
        if let Some(d) = &delivery {
            self.events.changed(&d.job_id);
            self.wake_deliveries();
        }
        Ok(delivery)
    }

    /// Tell this process's delivery loop that a delivery may be due (a job with a webhook ended
    /// here); it otherwise looks every second.
    pub fn wake_deliveries(&self) {
        self.deliveries.notify_one();
    }

    /// Resolves at the next [`JobStore::wake_deliveries`] (or at once for one made since the
    /// last wait).
    pub async fn deliveries_woken(&self) {
        self.deliveries.notified().await
    }

    /// Remove finished queue entries (nothing expires by itself; they hold only job ids, and
    /// are removed as soon as they finish). Returns how many.
    pub async fn vacuum(&self) -> Result<u64, StoreError> {
        on_topology!(&self.topology, |s| s.vacuum().await)
    }

    /// How often [`JobStore::vacuum`] should run, given the reconciler's interval.
    pub fn vacuum_every(&self, reconcile_every: Duration) -> Duration {
        on_topology!(&self.topology, |s| s.vacuum_every(reconcile_every))
    }

    /// Forget what the queue keeps about workers that are gone. Returns how many.
    pub async fn forget_dead_workers(&self) -> Result<u64, StoreError> {
        on_topology!(&self.topology, |s| s.forget_dead_workers().await)
    }

    /// Does the queue answer? (The embedded queue is the database.)
    pub async fn ping_queue(&self) -> Result<(), StoreError> {
        on_topology!(&self.topology, |s| s.ping_queue().await)
    }

    /// Queue entries by queue and state, for `/metrics` and the dashboard.
    pub async fn entry_counts(&self) -> Result<Vec<(String, String, i64)>, StoreError> {
        on_topology!(&self.topology, |s| s.entry_counts().await)
    }

    /// Wake this process's idle workers of `queues` whenever a job is pushed onto one, from any
    /// process (Redis pub/sub); None where pushes are made in this process only (embedded).
    pub fn listen_for_wakes(&self, queues: Vec<QueueName>) -> Option<JoinHandle<()>> {
        on_topology!(&self.topology, |s| s.listen_for_wakes(queues))
    }

    /// Whether change signals reach this process from every process (else event streams must
    /// poll the row to see changes made elsewhere).
    pub fn events_cross_processes(&self) -> bool {
        self.events.crosses_processes()
    }

    /// Close the database pool.
    pub async fn close(&self) {
        self.db().close().await
    }
}

impl Topology {
    /// Write new jobs (rows, inputs and, on the embedded queue, their entries) in one
    /// transaction, each only if it can claim its idempotency key. One flag per job: written,
    /// or its key is held by another job.
    pub(crate) async fn write_new(&self, jobs: &[&NewJob]) -> Result<Vec<bool>, StoreError> {
        on_topology!(self, |s| s.write_new(jobs).await)
    }

    /// After new jobs are committed: push their entries (Redis) and wake the local workers.
    pub(crate) async fn announce_new(&self, jobs: &[&NewJob]) {
        on_topology!(self, |s| s.announce_new(jobs).await)
    }

    /// Batches of new jobs written at once, and how long a busy writer waits for more.
    pub(crate) fn writers_and_linger(&self) -> (usize, Duration) {
        on_topology!(self, |s| s.writers_and_linger())
    }
}

/// The cut-off of stale rows: untouched for a lease.
fn stale_before(lease: Duration) -> String {
    let lease = chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::seconds(15));
    (chrono::Utc::now() - lease).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
