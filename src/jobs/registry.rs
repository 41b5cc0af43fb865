//! The worker registry behind the operator dashboard: every process that runs workers (the
//! in-process worker of `serve` on SQLite, every `sentiq worker`) keeps one row of
//! `sentiq_workers` fresh with a heartbeat, so `/admin` can tell which workers are alive and
//! when each was last heard from.
//!
//! The row lives in the database, not in the queue, because the database is the one thing
//! every topology shares (Redis has apalis's own worker sets, the embedded queue has none).
//! A row is named once per process start; a process killed without warning simply stops
//! beating and shows as dead after [`ALIVE_BEATS`] beats; a clean stop marks it stopped. The
//! live processes delete rows unseen for [`FORGET_AFTER`].

use std::time::Duration;

use sqlx::FromRow;

use crate::config::Config;
use crate::db::Db;
use crate::deps::Deps;
use crate::on_db;
use crate::timestamp::{Timestamp, now};

/// How often a worker process writes its heartbeat.
pub const BEAT: Duration = Duration::from_secs(5);
/// A worker whose last beat is older than this many beats is shown as dead.
pub const ALIVE_BEATS: u32 = 3;
/// Rows of workers unseen for this long are deleted.
pub const FORGET_AFTER: Duration = Duration::from_secs(24 * 3600);
/// Beats between two clean-ups of forgotten rows (and one at start).
const FORGET_EVERY_BEATS: u64 = 60;

/// What a worker process says about itself.
#[derive(Clone, Debug)]
pub struct Registration {
    /// Unique per process start: `{host}:{pid}:{random}`.
    pub name: String,
    /// `serve` (the in-process worker of the web process) or `worker`.
    pub role: &'static str,
    pub host: String,
    pub pid: i64,
    /// The queues it consumes, comma-separated.
    pub queues: String,
    /// Analyses it runs at once, per queue.
    pub concurrency: i64,
    pub started_at: String,
}

impl Registration {
    /// This process, running the workers `config` describes.
    pub fn new(config: &Config, role: &'static str) -> Registration {
        let host = host_name();
        let pid = std::process::id();
        let random = uuid::Uuid::new_v4().simple().to_string();
        Registration {
            name: format!("{host}:{pid}:{}", &random[..8]),
            role,
            host,
            pid: i64::from(pid),
            queues: config
                .worker
                .queues
                .iter()
                .map(|q| q.as_str())
                .collect::<Vec<_>>()
                .join(","),
            concurrency: config.worker.concurrency as i64,
            started_at: now(),
        }
    }
}

/// The name an operator knows the machine by: Heroku's dyno name (`worker.1`) when there is
/// one, as dyno host names are random; else the host name.
fn host_name() -> String {
    let from_env = |name| std::env::var(name).ok().map(|v| v.trim().to_owned());
    from_env("DYNO")
        .or_else(|| from_env("HOSTNAME"))
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|v| v.trim().to_owned())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// One row of the registry.
#[derive(Clone, Debug, FromRow)]
pub struct WorkerRow {
    pub name: String,
    pub role: String,
    pub host: String,
    pub pid: i64,
    pub queues: String,
    pub concurrency: i64,
    pub started_at: Timestamp,
    pub last_seen: Timestamp,
    pub stopped_at: Option<Timestamp>,
}

/// Insert the row, or refresh its `last_seen` (and clear a stop mark: the process is beating,
/// so it is not stopped).
pub async fn beat(db: &Db, worker: &Registration) -> Result<(), sqlx::Error> {
    let _write = db.write_permit().await;
    let now = now();
    on_db!(db, |pool| {
        sqlx::query(
            "INSERT INTO sentiq_workers (name, role, host, pid, queues, concurrency, \
             started_at, last_seen) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (name) DO UPDATE SET last_seen = excluded.last_seen, stopped_at = NULL",
        )
        .bind(&worker.name)
        .bind(worker.role)
        .bind(&worker.host)
        .bind(worker.pid)
        .bind(&worker.queues)
        .bind(worker.concurrency)
        .bind(&worker.started_at)
        .bind(&now)
        .execute(pool)
        .await
        .map(|_| ())
    })
}

/// Mark the worker stopped (a clean shutdown).
pub async fn stopped(db: &Db, name: &str) -> Result<(), sqlx::Error> {
    let _write = db.write_permit().await;
    let now = now();
    on_db!(db, |pool| {
        sqlx::query("UPDATE sentiq_workers SET stopped_at = $1, last_seen = $1 WHERE name = $2")
            .bind(&now)
            .bind(name)
            .execute(pool)
            .await
            .map(|_| ())
    })
}

/// Delete the rows of workers unseen since `before`; returns how many.
pub async fn forget_unseen_since(db: &Db, before: &str) -> Result<u64, sqlx::Error> {
    let _write = db.write_permit().await;
    on_db!(db, |pool| {
        sqlx::query("DELETE FROM sentiq_workers WHERE last_seen < $1")
            .bind(before)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
    })
}

/// The most recently seen workers, newest first.
pub async fn list(db: &Db, limit: i64) -> Result<Vec<WorkerRow>, sqlx::Error> {
    on_db!(db, |pool| {
        sqlx::query_as::<_, WorkerRow>(
            "SELECT name, role, host, pid, queues, concurrency, started_at, last_seen, stopped_at \
             FROM sentiq_workers ORDER BY last_seen DESC, name LIMIT $1",
        )
        .bind(limit)
        .fetch_all(pool)
        .await
    })
}

/// RFC 3339 (as stored) of `ago` before now.
pub fn stored_time_ago(ago: Duration) -> String {
    Timestamp::ago(ago).to_string()
}

/// Beat every [`BEAT`] (the first at once) and now and then delete forgotten rows, until
/// `stop` resolves (or the task is dropped). A beat in progress is never interrupted by the
/// stop, so no late beat can land after the row was marked stopped. A failed beat is logged and
/// the next one tried: the dashboard shows the worker as dead meanwhile, which is what an
/// operator should see while the database is away.
pub async fn heartbeat_until(db: Db, worker: Registration, stop: impl Future<Output = ()>) {
    let mut every = tokio::time::interval(BEAT);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stop = std::pin::pin!(stop);
    let mut beats = 0u64;
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = every.tick() => {}
        }
        if let Err(e) = beat(&db, &worker).await {
            tracing::warn!(worker = %worker.name, error = %e, "worker heartbeat not written");
        }
        if beats.is_multiple_of(FORGET_EVERY_BEATS) {
            match forget_unseen_since(&db, &stored_time_ago(FORGET_AFTER)).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(removed = n, "rows of long-gone workers removed"),
                Err(e) => tracing::warn!(error = %e, "worker registry clean-up failed"),
            }
        }
        beats += 1;
    }
}

/// The heartbeat task of this process's workers.
pub struct Heartbeat {
    db: Db,
    name: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

/// Longest a stop waits for the last beat, and then to mark the row stopped: shutdown must not hang on a database that is
/// away (the row then simply shows as dead).
const STOP_WRITE_TIMEOUT: Duration = Duration::from_secs(2);

impl Heartbeat {
    /// Start beating for the workers `config` describes (must be called inside a tokio runtime).
    pub fn start(config: &Config, deps: &Deps, role: &'static str) -> Heartbeat {
        let worker = Registration::new(config, role);
        let name = worker.name.clone();
        tracing::info!(worker = %name, "worker registered");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(heartbeat_until(deps.db().clone(), worker, async move {
            // A dropped sender (the handle dropped without `stop`) stops the beats too.
            let _ = stopped.await;
        }));
        Heartbeat {
            db: deps.db().clone(),
            name,
            stop,
            task,
        }
    }

    /// Stop beating (after the beat in progress, if any) and mark the row stopped (a clean
    /// shutdown). Bounded by [`STOP_WRITE_TIMEOUT`] per step.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let mut task = self.task;
        if tokio::time::timeout(STOP_WRITE_TIMEOUT, &mut task)
            .await
            .is_err()
        {
            // A beat stuck on the database: give up on it, and on a clean mark most likely too.
            task.abort();
        }
        match tokio::time::timeout(STOP_WRITE_TIMEOUT, stopped(&self.db, &self.name)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(worker = %self.name, error = %e, "worker not marked stopped")
            }
            Err(_) => tracing::warn!(worker = %self.name, "worker not marked stopped in time"),
        }
    }
}
