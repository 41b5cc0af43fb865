//! The job handler and the one place workers are built ([`register_jobs`]), used by `serve`,
//! `worker` and the tests alike.
//!
//! apalis 1.0 sharp edges handled here:
//! - The handler always tells apalis the delivery succeeded; whether a job succeeded, failed or
//!   should be retried is decided here and recorded in the job row (the SQLite backend would
//!   re-fetch a failed task immediately, over and over). Retries are new queue entries with a
//!   backoff delay, counted in `sentiq_jobs.attempts`; the attempt number is also the fencing
//!   token every write of a run carries, so a run that lost its job cannot touch it.
//! - A worker killed mid-job leaves a `running` row whose lease (refreshed every `lease / 4`)
//!   runs out; the reconciler (in every worker process; its updates are conditional, so several
//!   run safely at once) then gives it a new queue entry. It also re-enqueues queued rows whose
//!   queue entry was lost, and clears finished queue entries (nothing expires alone). apalis-redis
//!   also re-queues the in-flight entries of a worker silent for `HEARTBEAT x MISSED_HEARTBEATS`;
//!   whichever delivery comes first claims the row, the other is a no-op.
//! - Attempts are counted in the row (apalis-redis's orphan re-queue does not count them): a job
//!   whose runs keep dying fails after [`MAX_ATTEMPTS`] with a message; transient errors retry
//!   after an exponential backoff with jitter ([`backoff`]).
//! - The analysis runs on a blocking thread (`spawn_blocking`) so the worker's poll loop (which
//!   also sends the heartbeats) never stalls; it checks a cancel flag between chunks.
//! - Every worker gets a unique name per process start and per restart (a restarted worker
//!   under its old name would be refused while that name's heartbeat is fresh).
//! - Heartbeat interval and missed heartbeats are set explicitly ([`HEARTBEAT`],
//!   [`MISSED_HEARTBEATS`]; apalis-redis's default is 10 missed beats, not the documented 2).

use std::collections::HashMap;
use std::io::Cursor;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use apalis::prelude::{BackendExt, BoxDynError, Data, Monitor, WorkerBuilder, WorkerBuilderExt};
use apalis_redis::RedisStorage;
use apalis_sqlite::SqliteStorage;
use serde::Deserialize;
use tokio::sync::mpsc;

use super::batch::RunWrites;
use super::events::JobEvents;
use super::model::{self, ItemRow};
use super::queue::{JobArgs, Queue, QueueError, RedisQueue, WakeStrategy, Wakers};
use super::submitter::Submitter;
use crate::analysis::{self, AnalysisError, Format, Item, Observer, Options};
use crate::db::Db;

/// Default lease: how long a running job may go without any update before the reconciler hands
/// it to another worker (its worker is then presumed dead). Running jobs refresh it every
/// `lease / 4`. With the default reconcile interval a SIGKILLed worker's job is running again
/// elsewhere within lease + interval = 20 s.
pub const LEASE: Duration = Duration::from_secs(15);
/// Default interval of the reconciler.
pub const RECONCILE_EVERY: Duration = Duration::from_secs(5);
/// Default first retry delay after a transient error (then doubled per attempt, with jitter).
pub const RETRY_BASE: Duration = Duration::from_secs(1);
/// Most runs of one job (first run and retries after transient errors or dead workers).
pub const MAX_ATTEMPTS: i64 = 3;
/// apalis-redis worker heartbeat; a worker silent for `HEARTBEAT * MISSED_HEARTBEATS` is dead
/// and its in-flight entries are re-queued by the other workers.
pub const HEARTBEAT: Duration = Duration::from_secs(5);
pub const MISSED_HEARTBEATS: usize = 3;
/// Least time between two progress writes (a job shorter than this writes none).
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

    /// The stop flag of job `id`'s run in this process, while one is going. It stays readable
    /// after the run ends: whether the run was told to stop, or ran to its end.
    pub fn flag(&self, id: &str) -> Option<Arc<AtomicBool>> {
        self.0.lock().expect("cancel flags").get(id).cloned()
    }

    /// Ask a job running in this process to stop at its next chunk.
    pub fn cancel(&self, id: &str) {
        if let Some(f) = self.0.lock().expect("cancel flags").get(id) {
            f.store(true, Ordering::SeqCst);
        }
    }
}

/// Default longest analysis of one run (`JOB_TIMEOUT`).
pub const JOB_TIMEOUT: Duration = Duration::from_secs(3600);

/// Lease, retry and time-out timing (shortened by tests through the environment).
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    pub lease: Duration,
    pub reconcile_every: Duration,
    pub retry_base: Duration,
    /// Longest a run may analyse before it is stopped and the job fails with code `timeout`
    /// (None: no limit).
    pub job_timeout: Option<Duration>,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            lease: LEASE,
            reconcile_every: RECONCILE_EVERY,
            retry_base: RETRY_BASE,
            job_timeout: Some(JOB_TIMEOUT),
        }
    }
}

/// What the handler needs: the database, the queue, the cancel flags and the queue wakers.
#[derive(Clone, Debug)]
pub struct Deps {
    pub db: Db,
    pub queue: Queue,
    pub cancels: CancelFlags,
    pub wakers: Wakers,
    pub timing: Timing,
    /// "Job X changed" signals for the event streams.
    pub events: JobEvents,
    /// Set when the process stops: interrupted jobs are handed back to the queue.
    pub handing_back: Arc<AtomicBool>,
    /// Writes new jobs with group commit.
    pub submitter: Submitter,
    /// PostgreSQL: claims and finishes of this process's runs, group-committed.
    pub run_writes: Option<RunWrites>,
    /// This process's Prometheus metrics.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Analyses of this queue's worker that may run at once (set per queue by
    /// [`register_jobs`]; None: no limit beyond the worker's own concurrency).
    pub analysis_slots: Option<Arc<tokio::sync::Semaphore>>,
}

impl Deps {
    /// Must be called inside a tokio runtime (the submission writers start here).
    pub fn new(db: Db, queue: Queue, timing: Timing) -> Self {
        let events = match &queue {
            Queue::Redis(redis) => JobEvents::with_redis(RedisQueue::clone(redis)),
            Queue::Embedded => JobEvents::default(),
        };
        let wakers = Wakers::default();
        let submitter = Submitter::start(db.clone(), queue.clone(), wakers.clone());
        let run_writes = match &db {
            Db::Postgres(pool) => Some(RunWrites::start(pool.clone())),
            Db::Sqlite(_) => None,
        };
        Deps {
            metrics: Arc::new(crate::metrics::Metrics::new()),
            run_writes,
            analysis_slots: None,
            db,
            queue,
            events,
            cancels: CancelFlags::default(),
            wakers,
            timing,
            submitter,
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
    // Everything logged while this delivery runs names the job, even lines of shared code.
    let span = tracing::info_span!("job", job_id = %job_id);
    match tracing::Instrument::instrument(process(&deps, &job_id), span).await {
        Ok(_) => {}
        Err(e) => tracing::error!(job_id = %job_id, error = %e, "job handler failed"),
    }
    Ok(())
}

/// Build the worker of queue `queue_name` and register it on `monitor`, running up to
/// `concurrency` analyses at once. With Redis the worker of queue `quick` holds up to `in_flight`
/// jobs (at least `concurrency`): small jobs spend most of their time in database and Redis round
/// trips, which are group-committed, so many jobs in flight make few, larger statements.
///
/// The worker's name is unique per call (process id and a fresh random part), so a worker
/// rebuilt after a failure never takes over its predecessor's heartbeat or entries by name.
pub fn register_jobs(
    monitor: Monitor,
    deps: &Deps,
    queue_name: &str,
    concurrency: usize,
    in_flight: usize,
    poll_interval: Duration,
) -> Monitor {
    let mut deps = deps.clone();
    let queue_name = queue_name.to_owned();
    let concurrency = concurrency.max(1);
    let held = match &deps.queue {
        Queue::Redis(_) if queue_name == crate::config::QUICK => in_flight.max(concurrency),
        _ => concurrency,
    };
    deps.analysis_slots = Some(Arc::new(tokio::sync::Semaphore::new(concurrency)));
    let name = format!(
        "sentiq-{queue_name}-{}-{}",
        std::process::id(),
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    match deps.queue.clone() {
        Queue::Redis(redis) => monitor.register(move |_restart| {
            let config = redis
                .config(&queue_name)
                .batch_size(held)
                .heartbeat_interval(HEARTBEAT)
                .missed_heartbeats(MISSED_HEARTBEATS)
                // We neither listen to apalis's `tasks:*` events nor need its task locks
                // (the row is claimed with a conditional update): fewer commands per batch.
                .emit_events(false)
                .lock_tasks(false);
            let backend = RedisStorage::<JobArgs, _>::new(redis.connection())
                .with_config(config)
                .poll_with_strategy(WakeStrategy::new(
                    poll_interval,
                    deps.wakers.get(&queue_name),
                ));
            WorkerBuilder::new(name.as_str())
                .backend(backend)
                .concurrency(held)
                .data(deps.clone())
                .build(handle)
        }),
        Queue::Embedded => {
            let pool = deps
                .db
                .sqlite()
                .expect("the embedded queue runs on SQLite (checked at start-up)")
                .clone();
            monitor.register(move |_restart| {
                let config = apalis_sqlite::Config::default()
                    .queue(&queue_name)
                    .batch_size(concurrency)
                    .heartbeat_interval(HEARTBEAT)
                    .missed_heartbeats(6)
                    // A fetched entry stays `Queued` under this worker's lock until its ack:
                    // apalis's extra `Running` mark is one more SQLite write per job, which
                    // the submissions then queue behind; the row is claimed with a
                    // conditional update anyway, and orphaned `Queued` entries of a dead
                    // worker are handed out again like `Running` ones.
                    .lock_tasks(false);
                let backend = SqliteStorage::<JobArgs>::new(&pool)
                    .with_config(config)
                    .poll_with_strategy(WakeStrategy::new(
                        poll_interval,
                        deps.wakers.get(&queue_name),
                    ));
                WorkerBuilder::new(name.as_str())
                    .backend(backend)
                    .concurrency(concurrency)
                    .data(deps.clone())
                    .build(handle)
            })
        }
    }
}

/// A batch of documents as stored in `job_inputs`.
#[derive(Deserialize)]
struct StoredDocument {
    id: Option<String>,
    text: String,
}

/// Run one delivery of job `id`: claim it (conditional update, which also reads the input),
/// analyse off the runtime, store the items and the report, finish it (conditional update). A
/// second delivery of a job that is already running or final does nothing.
pub async fn process(deps: &Deps, id: &str) -> Result<Outcome, QueueError> {
    let db = &deps.db;
    let claimed = match &deps.run_writes {
        Some(writes) => writes.claim(id).await?,
        None => model::claim_with_input(db, id).await?,
    };
    let Some(model::Claimed { job, input }) = claimed else {
        let status = model::get(db, id).await?.map(|j| j.status);
        tracing::info!(job_id = %id, status = ?status, "delivery skipped: job not queued");
        return Ok(Outcome::Skipped);
    };
    deps.events.changed(id);
    // This run's fencing token: every later write of this run requires it.
    let attempt = job.attempts;
    let started = Instant::now();
    tracing::info!(job_id = %id, queue = %job.queue, attempt, input_bytes = job.input_bytes, "job started");
    // The budget counts the runs since submission or an operator's last retry.
    let runs = job.runs();
    if runs > MAX_ATTEMPTS {
        model::fail(
            db,
            id,
            attempt,
            "too_many_attempts",
            "the analysis was interrupted too many times (its worker stopped each time); \
             please submit it again",
        )
        .await?;
        deps.events.changed(id);
        deps.metrics
            .jobs_failed
            .with_label_values(&[&job.queue, "too_many_attempts"])
            .inc();
        tracing::warn!(job_id = %id, attempt, "job failed: too many attempts");
        return Ok(Outcome::Failed);
    }
    let metrics = &deps.metrics;
    metrics.jobs_started.with_label_values(&[&job.queue]).inc();
    if attempt == 1
        && let Some(wait) = seconds_between(&job.created_at, job.started_at.as_deref())
    {
        metrics
            .queue_wait
            .with_label_values(&[&job.queue])
            .observe(wait);
    }
    if attempt > 1 {
        model::delete_items(db, id, attempt).await?;
    }
    // The batched claim leaves larger inputs out (read below, once the job has its slot).
    if input.is_none() && job.input_bytes <= model::CLAIMED_INPUT_MAX_BYTES {
        model::fail(
            db,
            id,
            attempt,
            "internal",
            "the input of this job is missing",
        )
        .await?;
        metrics
            .jobs_failed
            .with_label_values(&[&job.queue, "internal"])
            .inc();
        return Ok(Outcome::Failed);
    }

    let flag = deps.cancels.register(id);
    if deps.handing_back.load(Ordering::SeqCst) {
        // Shutdown began between the claim and now: stop at the first chunk.
        flag.store(true, Ordering::SeqCst);
    }
    let lease = tokio::spawn(keep_lease(
        db.clone(),
        id.to_owned(),
        attempt,
        deps.timing.lease,
        flag.clone(),
    ));
    let timed_out = Arc::new(AtomicBool::new(false));
    let outcome = {
        // Jobs in flight beyond the analysis slots wait here, claimed and under lease.
        let _slot = match &deps.analysis_slots {
            Some(slots) => Some(
                slots
                    .acquire()
                    .await
                    .expect("analysis slots are never closed"),
            ),
            None => None,
        };
        let input = match input {
            Some(input) => Ok(input),
            None => match model::input(db, id).await {
                Ok(Some(input)) => Ok(input),
                Ok(None) => Err(AnalysisError::Internal(
                    "the input of this job is missing".into(),
                )),
                // Transient: retried like any database error of a run.
                Err(e) => Err(AnalysisError::Sink(Box::new(e))),
            },
        };
        match input {
            Err(e) => Err(e),
            Ok(input) if input.len() <= INLINE_MAX_BYTES => analyse_inline(&job, input, &flag),
            Ok(input) => {
                // The time limit counts from the analysis, not from the wait for a slot.
                let limit = deps.timing.job_timeout.map(|limit| {
                    let (flag, timed_out) = (flag.clone(), timed_out.clone());
                    tokio::spawn(async move {
                        tokio::time::sleep(limit).await;
                        timed_out.store(true, Ordering::SeqCst);
                        flag.store(true, Ordering::SeqCst);
                    })
                });
                let outcome = run_analysis(deps, &job, input, flag).await;
                if let Some(limit) = limit {
                    limit.abort();
                }
                outcome
            }
        }
    };
    lease.abort();
    deps.cancels.remove(id);

    let duration_ms = started.elapsed().as_millis() as u64;
    // The error code of a failure, for the metrics.
    let mut failed_code = "";
    let result = match outcome {
        Ok((report, items)) => {
            let json =
                serde_json::to_string(&report).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
            let finished = match &deps.run_writes {
                Some(writes) => {
                    let run = model::Finish {
                        id: id.to_owned(),
                        attempt,
                        report_json: json,
                        items,
                    };
                    writes.finish(run).await?
                }
                None => model::finish(db, id, attempt, &json, &items).await?,
            };
            if finished {
                tracing::info!(job_id = %id, duration_ms, items = report.items, "job succeeded");
                Outcome::Succeeded
            } else {
                tracing::info!(job_id = %id, duration_ms, "job finished but was cancelled or taken over meanwhile");
                delete_items_later(db, id, attempt);
                Outcome::Cancelled
            }
        }
        Err(AnalysisError::Cancelled) if timed_out.load(Ordering::SeqCst) => {
            let limit = deps.timing.job_timeout.unwrap_or_default();
            model::delete_items(db, id, attempt).await?;
            let message = format!(
                "the analysis ran longer than the time limit of {} and was stopped; \
                 split the input into smaller jobs (the operator sets the limit with JOB_TIMEOUT)",
                human_duration(limit)
            );
            if model::fail(db, id, attempt, "timeout", &message).await? {
                tracing::warn!(job_id = %id, duration_ms, limit_ms = limit.as_millis() as u64, "job failed: time limit reached");
                failed_code = "timeout";
                Outcome::Failed
            } else {
                tracing::info!(job_id = %id, duration_ms, "job cancelled");
                Outcome::Cancelled
            }
        }
        Err(AnalysisError::Cancelled) if deps.handing_back.load(Ordering::SeqCst) => {
            model::delete_items(db, id, attempt).await?;
            if deps.queue.requeue(db, &deps.wakers, &job, None).await? {
                tracing::info!(job_id = %id, duration_ms, "job handed back at shutdown");
                Outcome::Retrying
            } else {
                tracing::info!(job_id = %id, duration_ms, "job cancelled");
                Outcome::Cancelled
            }
        }
        Err(AnalysisError::Cancelled) => {
            // The row is already `cancelled` (that is what raised the flag), or another run
            // took the job over after this run's lease ran out.
            tracing::info!(job_id = %id, duration_ms, "job cancelled");
            delete_items_later(db, id, attempt);
            Outcome::Cancelled
        }
        Err(e) if e.is_bad_input() || runs >= MAX_ATTEMPTS => {
            tracing::info!(job_id = %id, duration_ms, code = e.code(), "job failed");
            model::delete_items(db, id, attempt).await?;
            model::fail(db, id, attempt, e.code(), &e.to_string()).await?;
            failed_code = e.code();
            Outcome::Failed
        }
        Err(e) => {
            let delay = backoff(deps.timing.retry_base, runs);
            tracing::warn!(job_id = %id, duration_ms, code = e.code(), error = %e, retry_in_ms = delay.as_millis() as u64, "job will be retried");
            model::delete_items(db, id, attempt).await?;
            deps.queue
                .requeue(db, &deps.wakers, &job, Some(delay))
                .await?;
            Outcome::Retrying
        }
    };
    deps.events.changed(id);
    let seconds = duration_ms as f64 / 1000.0;
    match &result {
        Outcome::Succeeded => {
            metrics
                .jobs_succeeded
                .with_label_values(&[&job.queue])
                .inc();
            metrics
                .job_duration
                .with_label_values(&[&job.queue])
                .observe(seconds);
        }
        Outcome::Failed => {
            metrics
                .jobs_failed
                .with_label_values(&[&job.queue, failed_code])
                .inc();
            metrics
                .job_duration
                .with_label_values(&[&job.queue])
                .observe(seconds);
        }
        // Cancels are counted where they are made (the web process); retries start again.
        Outcome::Cancelled | Outcome::Retrying | Outcome::Skipped => {}
    }
    Ok(result)
}

/// Seconds from one stored timestamp to another, if both are there and readable.
fn seconds_between(from: &str, to: Option<&str>) -> Option<f64> {
    let parse = |t: &str| chrono::DateTime::parse_from_rfc3339(t).ok();
    let (from, to) = (parse(from)?, parse(to?)?);
    Some(((to - from).num_milliseconds().max(0)) as f64 / 1000.0)
}

/// `90 s`, `2 min`, `1.5 h`: a limit as a person reads it.
fn human_duration(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 120.0 {
        format!("{} s", (secs * 1000.0).round() / 1000.0)
    } else if secs < 7200.0 {
        format!("{} min", (secs / 6.0).round() / 10.0)
    } else {
        format!("{} h", (secs / 360.0).round() / 10.0)
    }
}

/// The delay before retry number `attempt` (1, 2, ...): `base * 2^(attempt-1)`, capped at
/// 64 x base, of which a random half is dropped ("equal jitter"), so retries of jobs that failed
/// together (e.g. during a database restart) do not all come back at the same moment.
pub fn backoff(base: Duration, attempt: i64) -> Duration {
    let full = base * (1u32 << (attempt.clamp(1, 7) - 1));
    let half = full / 2;
    half + half.mul_f64(fastrand::f64())
}

/// Refresh the job's lease while it runs; raise the cancel flag if the run lost the job.
async fn keep_lease(db: Db, id: String, attempt: i64, lease: Duration, lost: Arc<AtomicBool>) {
    let mut every = tokio::time::interval(lease / 4);
    every.tick().await;
    loop {
        every.tick().await;
        match model::touch(&db, &id, attempt).await {
            Ok(true) => {}
            Ok(false) => {
                lost.store(true, Ordering::SeqCst);
                return;
            }
            Err(e) => tracing::warn!(job_id = %id, error = %e, "lease not refreshed"),
        }
    }
}

/// The cut-off of stale rows: untouched for a lease.
fn stale_before(lease: Duration) -> String {
    let lease = chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::seconds(15));
    (chrono::Utc::now() - lease).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Give stale jobs a new queue entry: running jobs whose worker died (lease expired) and queued
/// jobs whose queue entry was lost. Returns how many were re-enqueued.
pub async fn reconcile(deps: &Deps) -> Result<usize, QueueError> {
    let jobs = deps
        .queue
        .reconcile(&deps.db, &deps.wakers, &stale_before(deps.timing.lease))
        .await?;
    for job in &jobs {
        deps.events.changed(&job.id);
        tracing::warn!(job_id = %job.id, was = %job.status, attempts = job.attempts, "stale job re-enqueued");
    }
    Ok(jobs.len())
}

/// How often a worker removes finished Redis entries: in small, steady pieces. Removing a
/// reconciler interval's worth at once (25,000 entries every 5 s at 5,000 jobs a second) kept
/// Redis busy for tens of milliseconds, and every submission pushed meanwhile waited for it: a
/// POST latency spike every 5 s (BENCHMARKS.md).
pub const VACUUM_EVERY: Duration = Duration::from_millis(250);

/// Run [`reconcile`] every `reconcile_every` and clear finished queue entries (with Redis every
/// [`VACUUM_EVERY`]) until the task is dropped.
pub async fn reconcile_forever(deps: Deps) {
    use tokio::time::MissedTickBehavior::Delay;
    let mut every = tokio::time::interval(deps.timing.reconcile_every);
    every.set_missed_tick_behavior(Delay);
    // The embedded queue's clean-up is one DELETE on the single SQLite writer: it keeps the
    // reconciler's pace.
    let vacuum_every = match deps.queue {
        Queue::Redis(_) => VACUUM_EVERY.min(deps.timing.reconcile_every),
        Queue::Embedded => deps.timing.reconcile_every,
    };
    let mut vacuum = tokio::time::interval(vacuum_every);
    vacuum.set_missed_tick_behavior(Delay);
    let mut passes = 0u64;
    loop {
        tokio::select! {
            _ = every.tick() => {
                if let Err(e) = reconcile(&deps).await {
                    tracing::warn!(error = %e, "reconciler failed");
                }
                // apalis-redis keeps a small hash per worker name forever; names are unique per
                // start, so clear those of dead workers at start and now and then (a SCAN of
                // the key space).
                if passes.is_multiple_of(120)
                    && let Queue::Redis(redis) = &deps.queue
                {
                    match redis.remove_dead_worker_metadata().await {
                        Ok(0) => {}
                        Ok(n) => tracing::debug!(removed = n, "metadata of dead workers removed"),
                        Err(e) => tracing::warn!(error = %e, "worker metadata clean-up failed"),
                    }
                }
                passes += 1;
            }
            _ = vacuum.tick() => match deps.queue.vacuum(&deps.db).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(removed = n, "finished queue entries removed"),
                Err(e) => tracing::warn!(error = %e, "queue vacuum failed"),
            },
        }
    }
}

/// Remove the items a stopped run wrote, in a task of its own: the row is final already (or
/// another run owns it, which the delete checks), so the worker's slot need not wait for the
/// clean-up of a large job. Items left by a process that stops first are harmless: they are
/// served only for succeeded jobs, and a retry deletes them.
fn delete_items_later(db: &Db, id: &str, attempt: i64) {
    let (db, id) = (db.clone(), id.to_owned());
    tokio::spawn(async move {
        if let Err(e) = model::delete_items(&db, &id, attempt).await {
            tracing::warn!(job_id = %id, error = %e, "the items of a stopped run were not deleted");
        }
    });
}

/// Analyse on a blocking thread; items flow to an async task that stores them in large batches
/// and hands back the last ones, to be written with the final state in one transaction.
async fn run_analysis(
    deps: &Deps,
    job: &model::JobRow,
    input: Vec<u8>,
    cancelled: Arc<AtomicBool>,
) -> Result<(analysis::Report, Vec<ItemRow>), AnalysisError> {
    let (tx, mut rx) = mpsc::channel::<Vec<ItemRow>>(4);
    let db = deps.db.clone();
    let id = job.id.clone();
    let per_transaction = model::items_per_transaction(&db);
    let attempt = job.attempts;
    let stopped = cancelled.clone();
    let stop_seen = cancelled.clone();
    let inserter = tokio::spawn(async move {
        let mut pending: Vec<ItemRow> = Vec::new();
        while let Some(batch) = rx.recv().await {
            // A stopped run's items are deleted anyway: drop what is still on its way instead
            // of writing it first, so the worker is free at once.
            if stopped.load(Ordering::SeqCst) {
                pending.clear();
                continue;
            }
            pending.extend(batch);
            if pending.len() >= per_transaction {
                if !model::insert_items(&db, &id, attempt, &pending).await? {
                    // The run lost its job: stop the analysis at its next chunk.
                    stopped.store(true, Ordering::SeqCst);
                }
                pending.clear();
            }
        }
        Ok::<Vec<ItemRow>, sqlx::Error>(pending)
    });

    let observer = JobObserver {
        handle: tokio::runtime::Handle::current(),
        events: deps.events.clone(),
        db: deps.db.clone(),
        id: job.id.clone(),
        attempt: job.attempts,
        items: tx,
        cancelled,
        last_progress: Instant::now(),
    };
    let format = job.format();
    let options = Options {
        format,
        column: job.column_name.clone(),
        total_bytes: Some(input.len() as u64),
    };
    let analysed = tokio::task::spawn_blocking(move || {
        let mut observer = observer;
        let result = analyse_stored(input, &options, &mut observer);
        drop(observer);
        result
    })
    .await
    .unwrap_or_else(|e| Err(AnalysisError::Internal(format!("analysis thread: {e}"))));

    let stored = inserter
        .await
        .unwrap_or_else(|e| Err(sqlx::Error::Protocol(e.to_string())));
    // The inserter drops items once the run is stopped; a run stopped after its last chunk
    // therefore counts as stopped, never as finished with items missing.
    if analysed.is_ok() && stop_seen.load(Ordering::SeqCst) {
        return Err(AnalysisError::Cancelled);
    }
    match (analysed, stored) {
        (Err(AnalysisError::Sink(_)), Err(e)) | (Ok(_), Err(e)) => {
            Err(AnalysisError::Sink(Box::new(e)))
        }
        (Ok(report), Ok(items)) => Ok((report, items)),
        (Err(e), _) => Err(e),
    }
}

/// Inputs up to this size are analysed on the runtime thread that runs the job, in one piece
/// (tens of microseconds of scoring): handing them to a blocking thread, and from there to the
/// analysis thread pool, cost more than the analysis, in thread wake-ups, and its items need no
/// writer of their own. A run this short writes no progress and cannot reach the time limit.
///
/// The same size as the batched claim's largest input, so every input claimed with its job is
/// analysed inline.
pub const INLINE_MAX_BYTES: usize = model::CLAIMED_INPUT_MAX_BYTES as usize;

/// Analyse a stored input (any format) with `observer`.
fn analyse_stored(
    input: Vec<u8>,
    options: &Options,
    observer: &mut dyn Observer,
) -> Result<analysis::Report, AnalysisError> {
    if options.format == Format::Documents {
        match serde_json::from_slice::<Vec<StoredDocument>>(&input) {
            Ok(docs) => {
                analysis::analyze_documents(docs.into_iter().map(|d| (d.id, d.text)), observer)
            }
            Err(e) => Err(AnalysisError::Internal(format!("stored documents: {e}"))),
        }
    } else {
        analysis::analyze(Cursor::new(input), options, observer)
    }
}

/// The whole analysis of a small input ([`INLINE_MAX_BYTES`]) on the current thread; the items
/// are kept for the final write.
fn analyse_inline(
    job: &model::JobRow,
    input: Vec<u8>,
    cancelled: &AtomicBool,
) -> Result<(analysis::Report, Vec<ItemRow>), AnalysisError> {
    struct Collect<'a> {
        rows: Vec<ItemRow>,
        cancelled: &'a AtomicBool,
    }
    impl Observer for Collect<'_> {
        fn is_cancelled(&mut self) -> bool {
            self.cancelled.load(Ordering::SeqCst)
        }
        fn items(
            &mut self,
            items: &[Item<'_>],
        ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
            self.rows.extend(items.iter().map(item_row));
            Ok(())
        }
    }
    let options = Options {
        format: job.format(),
        column: job.column_name.clone(),
        total_bytes: Some(input.len() as u64),
    };
    let mut collect = Collect {
        rows: Vec::new(),
        cancelled,
    };
    let report = analyse_stored(input, &options, &mut collect)?;
    Ok((report, collect.rows))
}

/// The stored form of an analysed item.
fn item_row(it: &Item<'_>) -> ItemRow {
    ItemRow {
        position: it.position as i64,
        item_id: it.id.map(str::to_owned),
        text: it.text.to_owned(),
        neg: it.scores.neg,
        neu: it.scores.neu,
        pos: it.scores.pos,
        compound: it.scores.compound,
    }
}

/// The analyzer's hooks for a job: throttled progress writes that also notice a cancel made by
/// another process, the in-process cancel flag, and the items sent to the inserter task.
struct JobObserver {
    handle: tokio::runtime::Handle,
    events: JobEvents,
    db: Db,
    id: String,
    attempt: i64,
    items: mpsc::Sender<Vec<ItemRow>>,
    cancelled: Arc<AtomicBool>,
    /// When progress was last written (the start, at first: short jobs write none).
    last_progress: Instant,
}

impl Observer for JobObserver {
    fn progress(&mut self, done: u64, total: u64) {
        if self.last_progress.elapsed() < PROGRESS_EVERY {
            return;
        }
        self.last_progress = Instant::now();
        match self.handle.block_on(model::set_progress(
            &self.db,
            &self.id,
            self.attempt,
            done,
            total,
        )) {
            Ok(true) => {
                let _guard = self.handle.enter();
                self.events.changed(&self.id);
            }
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
        let rows: Vec<ItemRow> = items.iter().map(item_row).collect();
        self.items
            .blocking_send(rows)
            .map_err(|_| "the item store stopped".into())
    }
}
