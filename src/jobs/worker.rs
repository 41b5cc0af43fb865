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

use super::model::{self, Claimed, Finish, ItemRow, JobRow};
use super::queue::{JobArgs, QueueName, RedisQueue, WakeStrategy};
use super::store::{Backend, JobStore, StoreError};
use crate::analysis::{self, AnalysisError, Format, Item, Observer, Options, Report};
use crate::deps::Deps;
use sqlx::SqlitePool;

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
    pub fn cancel_all(&self) {
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
    queue: QueueName,
    concurrency: usize,
    in_flight: usize,
    poll_interval: Duration,
) -> Monitor {
    let mut deps = deps.clone();
    let concurrency = concurrency.max(1);
    deps.analysis_slots = Some(Arc::new(tokio::sync::Semaphore::new(concurrency)));
    let spec = WorkerSpec {
        name: format!(
            "sentiq-{queue}-{}-{}",
            std::process::id(),
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        ),
        queue,
        concurrency,
        poll_interval,
        wake: deps.store.wakers().get(queue),
    };
    match deps.store.backend() {
        Backend::Redis(redis) => {
            let held = match queue {
                QueueName::Quick => in_flight.max(concurrency),
                QueueName::Bulk => concurrency,
            };
            register_redis(monitor, deps, *redis, spec, held)
        }
        Backend::Sqlite(pool) => register_sqlite(monitor, deps, pool, spec),
    }
}

/// What a worker of one queue is, whichever backend it fetches from.
struct WorkerSpec {
    name: String,
    queue: QueueName,
    concurrency: usize,
    poll_interval: Duration,
    wake: Arc<tokio::sync::Notify>,
}

/// An apalis-redis worker holding up to `held` jobs: its claims and finishes are
/// group-committed, so many small jobs in flight make few statements.
fn register_redis(
    monitor: Monitor,
    deps: Deps,
    redis: RedisQueue,
    spec: WorkerSpec,
    held: usize,
) -> Monitor {
    monitor.register(move |_restart| {
        let config = redis
            .config(spec.queue)
            .batch_size(held)
            .heartbeat_interval(HEARTBEAT)
            .missed_heartbeats(MISSED_HEARTBEATS)
            // We neither listen to apalis's `tasks:*` events nor need its task locks (the row
            // is claimed with a conditional update): fewer commands per batch.
            .emit_events(false)
            .lock_tasks(false);
        let backend = RedisStorage::<JobArgs, _>::new(redis.connection())
            .with_config(config)
            .poll_with_strategy(WakeStrategy::new(spec.poll_interval, spec.wake.clone()));
        WorkerBuilder::new(spec.name.as_str())
            .backend(backend)
            .concurrency(held)
            .data(deps.clone())
            .build(handle)
    })
}

/// An apalis-sqlite worker on the embedded queue.
fn register_sqlite(monitor: Monitor, deps: Deps, pool: SqlitePool, spec: WorkerSpec) -> Monitor {
    monitor.register(move |_restart| {
        let config = apalis_sqlite::Config::default()
            .queue(spec.queue.as_str())
            .batch_size(spec.concurrency)
            .heartbeat_interval(HEARTBEAT)
            .missed_heartbeats(6)
            // A fetched entry stays `Queued` under this worker's lock until its ack: apalis's
            // extra `Running` mark is one more SQLite write per job, which the submissions then
            // queue behind; the row is claimed with a conditional update anyway, and orphaned
            // `Queued` entries of a dead worker are handed out again like `Running` ones.
            .lock_tasks(false);
        let backend = SqliteStorage::<JobArgs>::new(&pool)
            .with_config(config)
            .poll_with_strategy(WakeStrategy::new(spec.poll_interval, spec.wake.clone()));
        WorkerBuilder::new(spec.name.as_str())
            .backend(backend)
            .concurrency(spec.concurrency)
            .data(deps.clone())
            .build(handle)
    })
}

/// A batch of documents as stored in `job_inputs`.
#[derive(Deserialize)]
struct StoredDocument {
    id: Option<String>,
    text: String,
}

/// Run one delivery of job `id`: [`claim`] it, [`run`] the analysis, [`settle`] the row
/// according to how the run ended, [`record`] the metrics. A second delivery of a job that is
/// already running or final does nothing.
pub async fn process(deps: &Deps, id: &str) -> Result<Outcome, StoreError> {
    let outcome = deliver(deps, id).await;
    // A job sent back to the queue keeps its owner's slot (its next delivery gives it back); a
    // failed store write leaves the slot to the reconciler.
    if let Ok(o) = &outcome
        && *o != Outcome::Retrying
    {
        deps.store.delivery_ended(id).await;
    }
    outcome
}

/// [`process`] but for the owner's slot.
async fn deliver(deps: &Deps, id: &str) -> Result<Outcome, StoreError> {
    let Some(mut run) = claim(deps, id).await? else {
        return Ok(Outcome::Skipped);
    };
    // The input moves into the analysis: a large one is never held twice.
    let input = run.input.take();
    let ending = self::run(deps, &run, input).await?;
    let settled = settle(deps, &run, ending).await?;
    record(deps, &run, &settled);
    if run.job.webhook_url.is_some()
        && matches!(
            settled.outcome,
            Outcome::Succeeded | Outcome::Failed | Outcome::Cancelled
        )
    {
        // Its completion event is due now: this process's delivery loop need not wait for
        // its next look.
        deps.store.wake_deliveries();
    }
    Ok(settled.outcome)
}

/// A claimed job and this run of it.
struct Run {
    job: JobRow,
    /// The input, when the claim returned it (small inputs; larger ones are read once the run
    /// has its analysis slot).
    input: Option<Vec<u8>>,
    /// This run's fencing token: every write of the run requires it.
    attempt: i64,
    /// Runs since submission or an operator's last retry (the attempt budget's count).
    runs: i64,
    started: Instant,
}

impl Run {
    fn id(&self) -> &str {
        &self.job.id
    }
}

/// How a run ended, before the row says so.
enum Ending {
    Analysed(Box<Report>, Vec<ItemRow>),
    /// The run was refused or failed for good: the job fails with this code and message.
    Failed {
        code: &'static str,
        message: String,
    },
    /// The run reached the time limit.
    TimedOut,
    /// The process is stopping: the job goes back to the queue.
    HandedBack,
    /// The job was cancelled, or another run took it over after this run's lease ran out.
    Stopped,
    /// An error worth another run after a backoff (or the last of the budget: it fails).
    Error(AnalysisError),
}

/// What [`settle`] made of an [`Ending`].
struct Settled {
    outcome: Outcome,
    /// The error code of a failure, for the metrics.
    failed_code: &'static str,
    /// Whether the run analysed (its duration is recorded).
    analysed: bool,
}

/// `queued → running`, or None (logged) when the delivery finds nothing to run.
async fn claim(deps: &Deps, id: &str) -> Result<Option<Run>, StoreError> {
    let Some(Claimed { job, input }) = deps.store.claim(id).await? else {
        let status = model::get(deps.store.db(), id).await?.map(|j| j.status);
        tracing::info!(job_id = %id, status = ?status, "delivery skipped: job not queued");
        return Ok(None);
    };
    let attempt = job.attempts;
    tracing::info!(job_id = %id, queue = %job.queue, attempt, input_bytes = job.input_bytes, "job started");
    Ok(Some(Run {
        attempt,
        runs: job.runs(),
        job,
        input,
        started: Instant::now(),
    }))
}

/// Check the attempt budget, then analyse under a lease, a cancel flag and the time limit.
async fn run(deps: &Deps, run: &Run, input: Option<Vec<u8>>) -> Result<Ending, StoreError> {
    let (id, attempt) = (run.id(), run.attempt);
    if run.runs > MAX_ATTEMPTS {
        return Ok(Ending::Failed {
            code: "too_many_attempts",
            message: "the analysis was interrupted too many times (its worker stopped each \
                      time); please submit it again"
                .into(),
        });
    }
    let metrics = &deps.metrics;
    metrics
        .jobs_started
        .with_label_values(&[run.job.queue.as_str()])
        .inc();
    if attempt == 1
        && let Some(started) = run.job.started_at
    {
        metrics
            .queue_wait
            .with_label_values(&[run.job.queue.as_str()])
            .observe(run.job.created_at.seconds_until(started));
    }
    if attempt > 1 {
        deps.store.delete_items(id, attempt).await?;
    }
    // The batched claim leaves larger inputs out (read once the job has its slot).
    if input.is_none() && run.job.input_bytes <= model::CLAIMED_INPUT_MAX_BYTES {
        return Ok(Ending::Failed {
            code: "internal",
            message: "the input of this job is missing".into(),
        });
    }
    let flag = deps.cancels.register(id);
    if deps.handing_back.load(Ordering::SeqCst) {
        // Shutdown began between the claim and now: stop at the first chunk.
        flag.store(true, Ordering::SeqCst);
    }
    let lease = tokio::spawn(keep_lease(
        deps.store.clone(),
        id.to_owned(),
        attempt,
        deps.timing.lease,
        flag.clone(),
    ));
    let timed_out = Arc::new(AtomicBool::new(false));
    let analysed = analyse_in_slot(deps, run, input, flag, timed_out.clone()).await;
    lease.abort();
    deps.cancels.remove(id);
    Ok(match analysed {
        Ok((report, items)) => Ending::Analysed(Box::new(report), items),
        Err(AnalysisError::Cancelled) if timed_out.load(Ordering::SeqCst) => Ending::TimedOut,
        Err(AnalysisError::Cancelled) if deps.handing_back.load(Ordering::SeqCst) => {
            Ending::HandedBack
        }
        Err(AnalysisError::Cancelled) => Ending::Stopped,
        Err(e) => Ending::Error(e),
    })
}

/// Wait for an analysis slot (jobs in flight beyond the slots wait here, claimed and under
/// lease), read a large input, and analyse: inline when small, else off the runtime with the
/// time limit counted from now.
async fn analyse_in_slot(
    deps: &Deps,
    run: &Run,
    input: Option<Vec<u8>>,
    flag: Arc<AtomicBool>,
    timed_out: Arc<AtomicBool>,
) -> Result<(Report, Vec<ItemRow>), AnalysisError> {
    let _slot = match &deps.analysis_slots {
        Some(slots) => Some(
            slots
                .acquire()
                .await
                .expect("analysis slots are never closed"),
        ),
        None => None,
    };
    // The run's share of the worker's analysis memory is held until the analysis ends; an
    // input small enough to analyse inline needs none (a few KiB, bounded by the slots).
    let (source, _held) = match input {
        Some(input) if input.len() <= INLINE_MAX_BYTES => {
            return analyse_inline(&run.job, input, &flag);
        }
        Some(input) => {
            let held = deps
                .analysis_memory
                .hold(run_memory(input.len(), true))
                .await;
            (Source::Whole(input), held)
        }
        None => read_input(deps, &run.job).await?,
    };
    let source = match source {
        Source::Whole(input) if input.len() <= INLINE_MAX_BYTES => {
            return analyse_inline(&run.job, input, &flag);
        }
        source => source,
    };
    let limit = deps.timing.job_timeout.map(|limit| {
        let flag = flag.clone();
        tokio::spawn(async move {
            tokio::time::sleep(limit).await;
            timed_out.store(true, Ordering::SeqCst);
            flag.store(true, Ordering::SeqCst);
        })
    });
    let analysed = run_analysis(deps, &run.job, source, flag).await;
    if let Some(limit) = limit {
        limit.abort();
    }
    analysed
}

/// A job's input as the analysis gets it.
enum Source {
    Whole(Vec<u8>),
    /// In parts ([`super::parts`]), read one at a time.
    Parts {
        parts: u32,
        bytes: u64,
    },
}

/// Memory an analysis holds per byte of input it has in flight: the chunks' text, their
/// sentences' ranges and scores, the items handed to the item writer as rows, and the writer's
/// pending rows. Measured with `scripts/bench-memory.sh` (part 3, a worker's RSS with one run
/// and with several); BENCHMARKS.md has the figures.
pub const WORKING_BYTES_PER_INPUT_BYTE: usize = 12;

/// The share of the worker's analysis memory a run of an input of `input_bytes` holds: its
/// chunks in flight (fewer for a small input) at [`WORKING_BYTES_PER_INPUT_BYTE`], and about
/// twice the input when it is held `whole` (the stored bytes and what parsing them makes).
pub fn run_memory(input_bytes: usize, whole: bool) -> usize {
    let in_flight = input_bytes.min(analysis::chunks_in_flight() * analysis::input::CHUNK_BYTES);
    let working = in_flight.saturating_mul(WORKING_BYTES_PER_INPUT_BYTE);
    if whole {
        working.saturating_add(input_bytes.saturating_mul(2))
    } else {
        working
    }
}

/// Wait for the run's share of the worker's analysis memory ([`run_memory`]), then read job
/// `job`'s input from the database: whole, or as the number of its parts. The permit is held
/// until the analysis ends.
async fn read_input(
    deps: &Deps,
    job: &JobRow,
) -> Result<(Source, tokio::sync::OwnedSemaphorePermit), AnalysisError> {
    let bytes = job.input_bytes.max(0) as usize;
    // A batch of documents is parsed whole; other inputs over a part are in parts when they
    // came as an upload (a JSON body's text is stored whole).
    let whole = job.format == Format::Documents || bytes <= super::parts::PART_BYTES;
    let budget = &deps.analysis_memory;
    let mut held = budget.hold(run_memory(bytes, whole)).await;
    let stored = match model::input(deps.store.db(), &job.id).await {
        Ok(Some(stored)) => stored,
        Ok(None) => {
            return Err(AnalysisError::Internal(
                "the input of this job is missing".into(),
            ));
        }
        // Transient: retried like any database error of a run.
        Err(e) => return Err(AnalysisError::Sink(Box::new(e))),
    };
    Ok(match stored {
        (_, parts) if parts > 0 => (
            Source::Parts {
                parts: parts as u32,
                bytes: bytes as u64,
            },
            held,
        ),
        (body, _) => {
            if !whole {
                // Stored whole (a JSON body's text): it needs the larger share. The smaller one
                // goes first, so two such runs never wait on each other.
                drop(held);
                held = budget.hold(run_memory(body.len(), true)).await;
            }
            (Source::Whole(body), held)
        }
    })
}

/// Make the row say how the run ended: each write is conditional on the run's attempt, so a
/// run that lost its job (cancelled, taken over) changes nothing.
async fn settle(deps: &Deps, run: &Run, ending: Ending) -> Result<Settled, StoreError> {
    let (store, id, attempt) = (&deps.store, run.id(), run.attempt);
    let duration_ms = run.started.elapsed().as_millis() as u64;
    let settled = |outcome, failed_code| Settled {
        outcome,
        failed_code,
        analysed: true,
    };
    Ok(match ending {
        Ending::Analysed(report, items) => {
            let finish = Finish {
                id: id.to_owned(),
                attempt,
                report_json: serde_json::to_string(&report).expect("a report serialises"),
                items,
            };
            if store.finish(finish).await? {
                tracing::info!(job_id = %id, duration_ms, items = report.items, "job succeeded");
                settled(Outcome::Succeeded, "")
            } else {
                tracing::info!(job_id = %id, duration_ms, "job finished but was cancelled or taken over meanwhile");
                delete_items_later(store, id, attempt);
                settled(Outcome::Cancelled, "")
            }
        }
        Ending::Failed { code, message } => {
            store.fail(id, attempt, code, &message).await?;
            tracing::warn!(job_id = %id, attempt, code, "job failed before its analysis");
            Settled {
                outcome: Outcome::Failed,
                failed_code: code,
                analysed: false,
            }
        }
        Ending::TimedOut => {
            let limit = deps.timing.job_timeout.unwrap_or_default();
            store.delete_items(id, attempt).await?;
            let message = format!(
                "the analysis ran longer than the time limit of {} and was stopped; \
                 split the input into smaller jobs (the operator sets the limit with JOB_TIMEOUT)",
                human_duration(limit)
            );
            if store.fail(id, attempt, "timeout", &message).await? {
                tracing::warn!(job_id = %id, duration_ms, limit_ms = limit.as_millis() as u64, "job failed: time limit reached");
                settled(Outcome::Failed, "timeout")
            } else {
                tracing::info!(job_id = %id, duration_ms, "job cancelled");
                settled(Outcome::Cancelled, "")
            }
        }
        Ending::HandedBack => {
            store.delete_items(id, attempt).await?;
            if store.requeue(&run.job, None).await? {
                tracing::info!(job_id = %id, duration_ms, "job handed back at shutdown");
                settled(Outcome::Retrying, "")
            } else {
                tracing::info!(job_id = %id, duration_ms, "job cancelled");
                settled(Outcome::Cancelled, "")
            }
        }
        Ending::Stopped => {
            tracing::info!(job_id = %id, duration_ms, "job cancelled");
            delete_items_later(store, id, attempt);
            settled(Outcome::Cancelled, "")
        }
        Ending::Error(e) if e.is_bad_input() || run.runs >= MAX_ATTEMPTS => {
            tracing::info!(job_id = %id, duration_ms, code = e.code(), "job failed");
            store.delete_items(id, attempt).await?;
            store.fail(id, attempt, e.code(), &e.to_string()).await?;
            settled(Outcome::Failed, e.code())
        }
        Ending::Error(e) => {
            let delay = backoff(deps.timing.retry_base, run.runs);
            tracing::warn!(job_id = %id, duration_ms, code = e.code(), error = %e, retry_in_ms = delay.as_millis() as u64, "job will be retried");
            store.delete_items(id, attempt).await?;
            store.requeue(&run.job, Some(delay)).await?;
            settled(Outcome::Retrying, "")
        }
    })
}

/// Count the run in this process's metrics. Cancels are counted where they are made (the web
/// process); retries start again.
fn record(deps: &Deps, run: &Run, settled: &Settled) {
    let (metrics, queue) = (&deps.metrics, run.job.queue.as_str());
    let finished = match settled.outcome {
        Outcome::Succeeded => {
            metrics.jobs_succeeded.with_label_values(&[queue]).inc();
            true
        }
        Outcome::Failed => {
            metrics
                .jobs_failed
                .with_label_values(&[queue, settled.failed_code])
                .inc();
            true
        }
        Outcome::Cancelled | Outcome::Retrying | Outcome::Skipped => false,
    };
    if finished && settled.analysed {
        metrics
            .job_duration
            .with_label_values(&[queue])
            .observe(run.started.elapsed().as_secs_f64());
    }
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
async fn keep_lease(
    store: JobStore,
    id: String,
    attempt: i64,
    lease: Duration,
    lost: Arc<AtomicBool>,
) {
    let mut every = tokio::time::interval(lease / 4);
    every.tick().await;
    loop {
        every.tick().await;
        match store.touch(&id, attempt).await {
            Ok(true) => {}
            Ok(false) => {
                lost.store(true, Ordering::SeqCst);
                return;
            }
            Err(e) => tracing::warn!(job_id = %id, error = %e, "lease not refreshed"),
        }
    }
}

/// Give stale jobs a new queue entry: running jobs whose worker died (lease expired) and queued
/// jobs whose queue entry was lost. Returns how many were re-enqueued.
pub async fn reconcile(deps: &Deps) -> Result<usize, StoreError> {
    let jobs = deps.store.reconcile(deps.timing.lease).await?;
    for job in &jobs {
        tracing::warn!(job_id = %job.id, was = %job.status, attempts = job.attempts, "stale job re-enqueued");
    }
    Ok(jobs.len())
}

/// Expired idempotency keys deleted per reconciler pass: a short statement each time, and far
/// more than the keys that expire between passes at any submission rate the web can take.
const IDEMPOTENCY_KEYS_PER_PASS: i64 = 5000;

/// Remove expired data and old tombstones ([`JobStore::prune`]), counting what went.
pub async fn prune(deps: &Deps) -> Result<(), StoreError> {
    let pruned = deps.store.prune().await?;
    if pruned.expired > 0 {
        deps.metrics
            .jobs_pruned
            .with_label_values(&["expired"])
            .inc_by(pruned.expired);
        tracing::info!(jobs = pruned.expired, "expired jobs pruned");
    }
    if pruned.tombstones > 0 {
        deps.metrics.tombstones_removed.inc_by(pruned.tombstones);
        tracing::debug!(jobs = pruned.tombstones, "old tombstones removed");
    }
    Ok(())
}

/// Run [`reconcile`] every `reconcile_every`, clear finished queue entries as often as the
/// store asks, [`prune`] every `PRUNE_INTERVAL_MS` and feed the queues from the owners' waiting
/// lists every [`super::fair::FEED_EVERY`], until the task is dropped.
pub async fn reconcile_forever(deps: Deps) {
    use tokio::time::MissedTickBehavior::Delay;
    let mut every = tokio::time::interval(deps.timing.reconcile_every);
    every.set_missed_tick_behavior(Delay);
    let mut vacuum = tokio::time::interval(deps.store.vacuum_every(deps.timing.reconcile_every));
    vacuum.set_missed_tick_behavior(Delay);
    let mut pruner = tokio::time::interval(deps.store.retention().prune_every);
    pruner.set_missed_tick_behavior(Delay);
    let mut feeder = tokio::time::interval(super::fair::FEED_EVERY);
    feeder.set_missed_tick_behavior(Delay);
    let mut passes = 0u64;
    loop {
        tokio::select! {
            _ = every.tick() => {
                if let Err(e) = reconcile(&deps).await {
                    tracing::warn!(error = %e, "reconciler failed");
                }
                // Worker names are unique per start: forget the dead ones at start and now and
                // then (with Redis, a SCAN of the key space).
                if passes.is_multiple_of(120) {
                    match deps.store.forget_dead_workers().await {
                        Ok(0) => {}
                        Ok(n) => tracing::debug!(removed = n, "metadata of dead workers removed"),
                        Err(e) => tracing::warn!(error = %e, "worker metadata clean-up failed"),
                    }
                }
                passes += 1;
                match deps.store.prune_idempotency_keys(IDEMPOTENCY_KEYS_PER_PASS).await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(removed = n, "expired idempotency keys removed"),
                    Err(e) => tracing::warn!(error = %e, "idempotency key clean-up failed"),
                }
            }
            _ = vacuum.tick() => match deps.store.vacuum().await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(removed = n, "finished queue entries removed"),
                Err(e) => tracing::warn!(error = %e, "queue vacuum failed"),
            },
            _ = pruner.tick() => {
                if let Err(e) = prune(&deps).await {
                    tracing::warn!(error = %e, "pruner failed");
                }
            }
            _ = feeder.tick() => {
                if let Err(e) = deps.store.feed().await {
                    tracing::debug!(error = %e, "fair-share feed failed");
                }
            }
        }
    }
}

/// Remove the items a stopped run wrote, in a task of its own: the row is final already (or
/// another run owns it, which the delete checks), so the worker's slot need not wait for the
/// clean-up of a large job. Items left by a process that stops first are harmless: they are
/// served only for succeeded jobs, and a retry deletes them.
fn delete_items_later(store: &JobStore, id: &str, attempt: i64) {
    let (store, id) = (store.clone(), id.to_owned());
    tokio::spawn(async move {
        if let Err(e) = store.delete_items(&id, attempt).await {
            tracing::warn!(job_id = %id, error = %e, "the items of a stopped run were not deleted");
        }
    });
}

/// Items per message from the analysis thread to the item writer.
const ITEMS_PER_SEND: usize = 2048;
/// Messages that may wait for the item writer: with the writer's own pending rows (one
/// transaction's worth) this bounds a run's item rows in memory, so a writer slower than the
/// analysis (SQLite's one writer, busy) holds the analysis back rather than letting rows pile up.
const ITEM_SENDS_QUEUED: usize = 2;

/// Analyse on a blocking thread; items flow to an async task that stores them in large batches
/// and hands back the last ones, to be written with the final state in one transaction.
async fn run_analysis(
    deps: &Deps,
    job: &JobRow,
    source: Source,
    cancelled: Arc<AtomicBool>,
) -> Result<(Report, Vec<ItemRow>), AnalysisError> {
    let (tx, mut rx) = mpsc::channel::<Vec<ItemRow>>(ITEM_SENDS_QUEUED);
    let store = deps.store.clone();
    let id = job.id.clone();
    let per_transaction = store.items_per_write();
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
                if !store.store_items(&id, attempt, &pending).await? {
                    // The run lost its job: stop the analysis at its next chunk.
                    stopped.store(true, Ordering::SeqCst);
                }
                pending.clear();
            }
        }
        Ok::<Vec<ItemRow>, StoreError>(pending)
    });

    let observer = JobObserver {
        handle: tokio::runtime::Handle::current(),
        store: deps.store.clone(),
        id: job.id.clone(),
        attempt: job.attempts,
        items: tx,
        cancelled,
        last_progress: Instant::now(),
    };
    let format = job.format;
    let options = Options {
        format,
        fields: job.fields(),
        total_bytes: Some(job.input_bytes.max(0) as u64),
        languages: true,
    };
    let (handle, db, id) = (
        tokio::runtime::Handle::current(),
        deps.store.db().clone(),
        job.id.clone(),
    );
    let analysed = tokio::task::spawn_blocking(move || {
        let mut observer = observer;
        let result = match source {
            Source::Whole(input) => analyse_stored(input, &options, &mut observer),
            Source::Parts { parts, bytes } => {
                let reader = super::parts::PartsReader::new(handle, db, &id, parts, bytes);
                analysis::analyze(reader, &options, &mut observer)
            }
        };
        drop(observer);
        result
    })
    .await
    .unwrap_or_else(|e| Err(AnalysisError::Internal(format!("analysis thread: {e}"))));

    let stored = match inserter.await {
        Ok(stored) => stored.map_err(|e| AnalysisError::Sink(Box::new(e))),
        Err(e) => Err(AnalysisError::Internal(format!("item writer: {e}"))),
    };
    // The inserter drops items once the run is stopped; a run stopped after its last chunk
    // therefore counts as stopped, never as finished with items missing.
    if analysed.is_ok() && stop_seen.load(Ordering::SeqCst) {
        return Err(AnalysisError::Cancelled);
    }
    match (analysed, stored) {
        (Err(AnalysisError::Sink(_)), Err(e)) | (Ok(_), Err(e)) => Err(e),
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
) -> Result<Report, AnalysisError> {
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
    job: &JobRow,
    input: Vec<u8>,
    cancelled: &AtomicBool,
) -> Result<(Report, Vec<ItemRow>), AnalysisError> {
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
        format: job.format,
        fields: job.fields(),
        total_bytes: Some(input.len() as u64),
        languages: true,
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
        source: it.source.to_owned(),
        lang: it.lang,
    }
}

/// The analyzer's hooks for a job: throttled progress writes that also notice a cancel made by
/// another process, the in-process cancel flag, and the items sent to the inserter task.
struct JobObserver {
    handle: tokio::runtime::Handle,
    store: JobStore,
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
        let written =
            self.handle
                .block_on(self.store.progress(&self.id, self.attempt, done, total));
        match written {
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
        // In slices, so the rows waiting for the writer stay few whatever the batch.
        for slice in items.chunks(ITEMS_PER_SEND) {
            let rows: Vec<ItemRow> = slice.iter().map(item_row).collect();
            self.items
                .blocking_send(rows)
                .map_err(|_| "the item store stopped")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_runs_share_of_memory_stops_growing_with_its_input_unless_it_is_held_whole() {
        const MIB: usize = 1 << 20;
        let cap = analysis::chunks_in_flight()
            * analysis::input::CHUNK_BYTES
            * WORKING_BYTES_PER_INPUT_BYTE;
        // A small input has fewer chunks in flight than the cores could take.
        assert_eq!(
            run_memory(100 << 10, false),
            (100 << 10) * WORKING_BYTES_PER_INPUT_BYTE
        );
        // Read a part at a time, a large input costs the same at 64 MiB as at 8 GiB.
        assert_eq!(run_memory(64 * MIB, false), cap);
        assert_eq!(run_memory(8192 * MIB, false), cap);
        // Held whole, the input itself (and what parsing it makes) comes on top.
        assert_eq!(run_memory(64 * MIB, true), cap + 128 * MIB);
    }
}
