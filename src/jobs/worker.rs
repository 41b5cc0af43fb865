//! The job handler and the one place workers are built ([`register_jobs`]), used by `serve`,
//! `worker` and the tests alike.
//!
//! apalis 1.0 sharp edges handled here:
//! - The handler always tells apalis the delivery succeeded; whether a job succeeded, failed or
//!   should be retried is decided here and recorded in the job row (the SQLite backend would
//!   re-fetch a failed task immediately, over and over). Retries are new queue entries with a
//!   backoff delay, counted in `sentiq_jobs.attempts`; the attempt number is also the fencing
//!   token every write of a run carries, so a run that lost its job cannot touch it.
//! - A worker killed mid-job leaves a `running` row whose lease (refreshed every `LEASE / 4`)
//!   runs out; the reconciler then gives it a new queue entry. It also re-enqueues queued rows
//!   whose queue entry was lost, and clears old finished queue entries (nothing expires alone).
//! - The analysis runs on a blocking thread (`spawn_blocking`) so the worker's poll loop (which
//!   also sends the heartbeats) never stalls; it checks a cancel flag between chunks.
//! - Every worker gets a unique name per process start and per restart.
//! - Heartbeat interval and missed heartbeats are set explicitly.

use std::collections::HashMap;
use std::io::Cursor;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use apalis::prelude::{BackendExt, BoxDynError, Data, Monitor, WorkerBuilder, WorkerBuilderExt};
use apalis_sqlite::SqliteStorage;
use serde::Deserialize;
use sqlx::SqlitePool;
use tokio::sync::mpsc;

use super::model::{self, ItemRow};
use super::queue::{self, JobArgs, WakeStrategy, Wakers};
use super::submitter::Submitter;
use crate::analysis::{self, AnalysisError, Format, Item, Observer, Options};

/// How long a running job may go without any update before the reconciler hands it to another
/// worker (its worker is then presumed dead). Running jobs refresh it every `LEASE / 4`.
pub const LEASE: Duration = Duration::from_secs(60);
/// How often the reconciler looks for stale jobs.
pub const RECONCILE_EVERY: Duration = Duration::from_secs(15);
/// Most runs of one job (first run and retries after transient errors).
pub const MAX_ATTEMPTS: i64 = 3;
/// Least time between two progress writes.
const PROGRESS_EVERY: Duration = Duration::from_millis(200);

/// Cancel flags of the jobs running in this process.
#[derive(Clone, Debug, Default)]
pub struct CancelFlags(Arc<Mutex<HashMap<String, Arc<AtomicBool>>>>);

impl CancelFlags {
    fn register(&self, id: &str) -> Arc<AtomicBool> {
        let flag = Arc::new(AtomicBool::new(false));
        self.0
            .lock()
            .expect("cancel flags")
            .insert(id.to_owned(), flag.clone());
        flag
    }

    fn remove(&self, id: &str) {
        self.0.lock().expect("cancel flags").remove(id);
    }

    /// Stop every job running in this process at its next chunk.
    fn cancel_all(&self) {
        for f in self.0.lock().expect("cancel flags").values() {
            f.store(true, Ordering::SeqCst);
        }
    }

    /// Ask a job running in this process to stop at its next chunk.
    pub fn cancel(&self, id: &str) {
        if let Some(f) = self.0.lock().expect("cancel flags").get(id) {
            f.store(true, Ordering::SeqCst);
        }
    }
}

/// What the handler needs: the pool, the cancel flags and the queue wakers.
#[derive(Clone, Debug)]
pub struct Deps {
    pub pool: SqlitePool,
    pub cancels: CancelFlags,
    pub wakers: Wakers,
    /// Set when the process stops: interrupted jobs are handed back to the queue.
    pub handing_back: Arc<AtomicBool>,
    /// Writes new jobs (group commit).
    pub submitter: Submitter,
}

impl Deps {
    /// Must be called inside a tokio runtime (it starts the submission writer).
    pub fn new(pool: SqlitePool) -> Self {
        let wakers = Wakers::default();
        Deps {
            submitter: Submitter::start(pool.clone(), wakers.clone()),
            pool,
            cancels: CancelFlags::default(),
            wakers,
            handing_back: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Shutdown ran out of patience: stop the running jobs at their next chunk and hand them
    /// back to the queue, so another worker (or the next start) runs them again.
    pub fn hand_back_running_jobs(&self) {
        self.handing_back.store(true, Ordering::SeqCst);
        self.cancels.cancel_all();
    }
}

/// How one delivery ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The job was not there to run (already final, running elsewhere, unknown): nothing done.
    Skipped,
    Succeeded,
    Failed,
    Cancelled,
    /// A transient error: the job went back to the queue with a delay.
    Retrying,
}

/// The apalis handler: run the job, never report an error to apalis (see module docs).
pub async fn handle(job_id: JobArgs, deps: Data<Deps>) -> Result<(), BoxDynError> {
    match process(&deps, &job_id).await {
        Ok(_) => {}
        Err(e) => tracing::error!(job_id = %job_id, error = %e, "job handler failed"),
    }
    Ok(())
}

/// Build and register one worker per queue on `monitor`.
pub fn register_jobs(
    mut monitor: Monitor,
    deps: &Deps,
    queues: &[String],
    concurrency: usize,
    poll_interval: Duration,
) -> Monitor {
    let started = uuid::Uuid::new_v4().simple().to_string();
    for queue_name in queues {
        let deps = deps.clone();
        let queue_name = queue_name.clone();
        let started = started[..12].to_owned();
        monitor = monitor.register(move |restart| {
            let config = apalis_sqlite::Config::default()
                .queue(&queue_name)
                .batch_size(concurrency.max(1))
                .heartbeat_interval(Duration::from_secs(5))
                .missed_heartbeats(6);
            let backend = SqliteStorage::<JobArgs>::new(&deps.pool)
                .with_config(config)
                .poll_with_strategy(WakeStrategy::new(
                    poll_interval,
                    deps.wakers.get(&queue_name),
                ));
            let name = format!(
                "sentiq-{queue_name}-{}-{started}-{restart}",
                std::process::id()
            );
            WorkerBuilder::new(name)
                .backend(backend)
                .concurrency(concurrency.max(1))
                .data(deps.clone())
                .build(handle)
        });
    }
    monitor
}

/// A batch of documents as stored in `job_inputs`.
#[derive(Deserialize)]
struct StoredDocument {
    id: Option<String>,
    text: String,
}

/// Run one delivery of job `id`: claim it (conditional update), analyse off the runtime, store
/// the items and the report, finish it (conditional update). A second delivery of a job that is
/// already running or final does nothing.
pub async fn process(deps: &Deps, id: &str) -> Result<Outcome, sqlx::Error> {
    let pool = &deps.pool;
    let Some(job) = model::claim(pool, id).await? else {
        let status = model::get(pool, id).await?.map(|j| j.status);
        tracing::info!(job_id = %id, status = ?status, "delivery skipped: job not queued");
        return Ok(Outcome::Skipped);
    };
    // This run's fencing token: every later write of this run requires it.
    let attempt = job.attempts;
    let started = Instant::now();
    tracing::info!(job_id = %id, queue = %job.queue, attempt, input_bytes = job.input_bytes, "job started");
    if attempt > MAX_ATTEMPTS {
        model::fail(
            pool,
            id,
            attempt,
            "too_many_attempts",
            "the analysis was interrupted too many times; please submit it again",
        )
        .await?;
        return Ok(Outcome::Failed);
    }
    if attempt > 1 {
        model::delete_items(pool, id).await?;
    }
    let Some(input) = model::input(pool, id).await? else {
        model::fail(
            pool,
            id,
            attempt,
            "internal",
            "the input of this job is missing",
        )
        .await?;
        return Ok(Outcome::Failed);
    };

    let flag = deps.cancels.register(id);
    if deps.handing_back.load(Ordering::SeqCst) {
        // Shutdown began between the claim and now: stop at the first chunk.
        flag.store(true, Ordering::SeqCst);
    }
    let lease = tokio::spawn(keep_lease(
        pool.clone(),
        id.to_owned(),
        attempt,
        flag.clone(),
    ));
    let outcome = run_analysis(deps, &job, input, flag).await;
    lease.abort();
    deps.cancels.remove(id);

    let duration_ms = started.elapsed().as_millis() as u64;
    let result = match outcome {
        Ok(report) => {
            let json =
                serde_json::to_string(&report).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
            if model::succeed(pool, id, attempt, &json).await? {
                tracing::info!(job_id = %id, duration_ms, items = report.items, "job succeeded");
                Outcome::Succeeded
            } else {
                tracing::info!(job_id = %id, duration_ms, "job finished but was cancelled meanwhile");
                model::delete_items(pool, id).await?;
                Outcome::Cancelled
            }
        }
        Err(AnalysisError::Cancelled) if deps.handing_back.load(Ordering::SeqCst) => {
            model::delete_items(pool, id).await?;
            let _write = crate::db::write_permit().await;
            let mut tx = pool.begin().await?;
            if model::requeue(&mut tx, id, attempt).await? {
                queue::enqueue(&mut tx, &job.queue, id, None)
                    .await
                    .map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
                tx.commit().await?;
                tracing::info!(job_id = %id, duration_ms, "job handed back at shutdown");
                Outcome::Retrying
            } else {
                tx.commit().await?;
                tracing::info!(job_id = %id, duration_ms, "job cancelled");
                Outcome::Cancelled
            }
        }
        Err(AnalysisError::Cancelled) => {
            // The row is already `cancelled` (that is what raised the flag).
            tracing::info!(job_id = %id, duration_ms, "job cancelled");
            model::delete_items(pool, id).await?;
            Outcome::Cancelled
        }
        Err(e) if e.is_bad_input() || attempt >= MAX_ATTEMPTS => {
            tracing::info!(job_id = %id, duration_ms, code = e.code(), "job failed");
            model::delete_items(pool, id).await?;
            model::fail(pool, id, attempt, e.code(), &e.to_string()).await?;
            Outcome::Failed
        }
        Err(e) => {
            tracing::warn!(job_id = %id, duration_ms, code = e.code(), error = %e, "job will be retried");
            model::delete_items(pool, id).await?;
            retry(deps, &job).await?;
            Outcome::Retrying
        }
    };
    Ok(result)
}

/// Refresh the job's lease while it runs; raise the cancel flag if the run lost the job.
async fn keep_lease(pool: SqlitePool, id: String, attempt: i64, cancelled: Arc<AtomicBool>) {
    let mut every = tokio::time::interval(LEASE / 4);
    every.tick().await;
    loop {
        every.tick().await;
        match model::touch(&pool, &id, attempt).await {
            Ok(true) => {}
            Ok(false) => {
                cancelled.store(true, Ordering::SeqCst);
                return;
            }
            Err(e) => tracing::warn!(job_id = %id, error = %e, "lease not refreshed"),
        }
    }
}

/// Give stale jobs a new queue entry: running jobs whose worker died (lease expired) and queued
/// jobs whose queue entry was lost. Returns how many were re-enqueued.
pub async fn reconcile(deps: &Deps) -> Result<usize, sqlx::Error> {
    let stale_before =
        (chrono::Utc::now() - LEASE).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut count = 0;
    for (id, queue_name, status) in model::stale(&deps.pool, &stale_before).await? {
        let _write = crate::db::write_permit().await;
        let mut tx = deps.pool.begin().await?;
        if model::reset_stale(&mut tx, &id, &stale_before).await? {
            queue::enqueue(&mut tx, &queue_name, &id, None)
                .await
                .map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
            tx.commit().await?;
            deps.wakers.wake(&queue_name);
            tracing::warn!(job_id = %id, was = %status, "stale job re-enqueued");
            count += 1;
        }
    }
    Ok(count)
}

/// Run [`reconcile`] every [`RECONCILE_EVERY`] (and clear old queue entries) until the task
/// is dropped.
pub async fn reconcile_forever(deps: Deps) {
    let mut every = tokio::time::interval(RECONCILE_EVERY);
    loop {
        every.tick().await;
        if let Err(e) = reconcile(&deps).await {
            tracing::warn!(error = %e, "reconciler failed");
        }
        match queue::vacuum(&deps.pool).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "old queue entries removed"),
            Err(e) => tracing::warn!(error = %e, "queue vacuum failed"),
        }
    }
}

/// Hand the job back to its queue with an exponential delay (1 s, 2 s, 4 s, ...).
async fn retry(deps: &Deps, job: &model::JobRow) -> Result<(), sqlx::Error> {
    let delay = Duration::from_secs(1 << (job.attempts.clamp(1, 6) - 1));
    let _write = crate::db::write_permit().await;
    let mut tx = deps.pool.begin().await?;
    if model::requeue(&mut tx, &job.id, job.attempts).await? {
        queue::enqueue(&mut tx, &job.queue, &job.id, Some(delay))
            .await
            .map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
    }
    tx.commit().await
}

/// Analyse on a blocking thread; items flow to an async task that stores them in batches.
async fn run_analysis(
    deps: &Deps,
    job: &model::JobRow,
    input: Vec<u8>,
    cancelled: Arc<AtomicBool>,
) -> Result<analysis::Report, AnalysisError> {
    let (tx, mut rx) = mpsc::channel::<Vec<ItemRow>>(4);
    let pool = deps.pool.clone();
    let id = job.id.clone();
    let inserter = tokio::spawn(async move {
        while let Some(batch) = rx.recv().await {
            model::insert_items(&pool, &id, &batch).await?;
        }
        Ok::<(), sqlx::Error>(())
    });

    let observer = JobObserver {
        handle: tokio::runtime::Handle::current(),
        pool: deps.pool.clone(),
        id: job.id.clone(),
        attempt: job.attempts,
        items: tx,
        cancelled,
        last_progress: None,
    };
    let format = job.format();
    let options = Options {
        format,
        column: job.column_name.clone(),
        total_bytes: Some(input.len() as u64),
    };
    let analysed = tokio::task::spawn_blocking(move || {
        let mut observer = observer;
        let result = if format == Format::Documents {
            match serde_json::from_slice::<Vec<StoredDocument>>(&input) {
                Ok(docs) => analysis::analyze_documents(
                    docs.into_iter().map(|d| (d.id, d.text)),
                    &mut observer,
                ),
                Err(e) => Err(AnalysisError::Internal(format!("stored documents: {e}"))),
            }
        } else {
            analysis::analyze(Cursor::new(input), &options, &mut observer)
        };
        drop(observer);
        result
    })
    .await
    .unwrap_or_else(|e| Err(AnalysisError::Internal(format!("analysis thread: {e}"))));

    let stored = inserter
        .await
        .unwrap_or_else(|e| Err(sqlx::Error::Protocol(e.to_string())));
    match (analysed, stored) {
        (Err(AnalysisError::Sink(_)), Err(e)) | (Ok(_), Err(e)) => {
            Err(AnalysisError::Sink(Box::new(e)))
        }
        (result, _) => result,
    }
}

/// The analyzer's hooks for a job: throttled progress writes that also notice a cancel made by
/// another process, the in-process cancel flag, and the items sent to the inserter task.
struct JobObserver {
    handle: tokio::runtime::Handle,
    pool: SqlitePool,
    id: String,
    attempt: i64,
    items: mpsc::Sender<Vec<ItemRow>>,
    cancelled: Arc<AtomicBool>,
    last_progress: Option<Instant>,
}

impl Observer for JobObserver {
    fn progress(&mut self, done: u64, total: u64) {
        if self
            .last_progress
            .is_some_and(|t| t.elapsed() < PROGRESS_EVERY)
        {
            return;
        }
        self.last_progress = Some(Instant::now());
        match self.handle.block_on(model::set_progress(
            &self.pool,
            &self.id,
            self.attempt,
            done,
            total,
        )) {
            Ok(true) => {}
            // The row is no longer running: it was cancelled (perhaps by another process).
            Ok(false) => self.cancelled.store(true, Ordering::SeqCst),
            Err(e) => tracing::warn!(job_id = %self.id, error = %e, "progress not recorded"),
        }
    }

    fn is_cancelled(&mut self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }

    fn items(
        &mut self,
        items: &[Item<'_>],
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let rows: Vec<ItemRow> = items
            .iter()
            .map(|it| ItemRow {
                position: it.position as i64,
                item_id: it.id.map(str::to_owned),
                text: it.text.to_owned(),
                neg: it.scores.neg,
                neu: it.scores.neu,
                pos: it.scores.pos,
                compound: it.scores.compound,
            })
            .collect();
        self.items
            .blocking_send(rows)
            .map_err(|_| "the item store stopped".into())
    }
}
