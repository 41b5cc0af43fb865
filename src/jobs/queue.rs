//! The SQLite-backed apalis queue: enqueue inside the caller's transaction, and a poll strategy
//! that really wakes idle workers.
//!
//! apalis 1.0 sharp edges handled here:
//! - The built-in interval strategy fires once and never re-arms, so an idle worker would only
//!   look again at its next heartbeat. [`WakeStrategy`] re-arms a tokio interval on every tick and
//!   also wakes on an in-process [`Notify`] that [`Wakers::wake`] fires after each committed push.
//! - Queue names are set explicitly (`quick`, `bulk`), never derived from a Rust type name.
//! - The payload on the queue is only the job id (a JSON string); the input is in `job_inputs`.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use apalis::prelude::{PollSnapshot, PollStrategy, TaskBuilder};
use sqlx::SqliteConnection;
use tokio::sync::Notify;
use tokio::sync::futures::OwnedNotified;
use tokio::time::{Interval, MissedTickBehavior};

use crate::config::{BULK, QUICK};

/// The queue payload: the job id.
pub type JobArgs = String;

/// Push a job id onto `queue` using the caller's connection or transaction: committed together
/// with the job row, or rolled back together with it.
pub async fn enqueue(
    conn: &mut SqliteConnection,
    queue: &str,
    job_id: &str,
    delay: Option<Duration>,
) -> Result<(), apalis_sqlite::Error> {
    let args = serde_json::to_vec(job_id).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    // One delivery attempt as far as apalis knows: retries are decided by the worker, counted in
    // the job row (the SQLite backend would otherwise re-fetch a failed task at once).
    let mut builder = TaskBuilder::new(args).max_attempts(1);
    if let Some(d) = delay {
        builder = builder.run_after(d);
    }
    apalis_sqlite::queries::push_tasks(conn, queue, &[builder.build()]).await
}

/// One [`Notify`] per queue, shared by the web handlers (which fire it after a commit) and the
/// in-process workers (which wait on it).
#[derive(Clone, Debug)]
pub struct Wakers {
    by_queue: Arc<HashMap<&'static str, Arc<Notify>>>,
}

impl Default for Wakers {
    fn default() -> Self {
        let by_queue = [QUICK, BULK]
            .into_iter()
            .map(|q| (q, Arc::new(Notify::new())))
            .collect();
        Wakers {
            by_queue: Arc::new(by_queue),
        }
    }
}

impl Wakers {
    pub fn get(&self, queue: &str) -> Arc<Notify> {
        self.by_queue
            .get(queue)
            .cloned()
            .unwrap_or_else(|| Arc::new(Notify::new()))
    }

    /// Wake the idle workers of `queue` in this process.
    pub fn wake(&self, queue: &str) {
        if let Some(n) = self.by_queue.get(queue) {
            n.notify_waiters();
        }
    }
}

/// Wake the worker on every tick of an interval (re-armed each time) and on every push made in
/// this process.
pub struct WakeStrategy {
    interval: Interval,
    notify: Arc<Notify>,
    notified: Pin<Box<OwnedNotified>>,
}

impl std::fmt::Debug for WakeStrategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WakeStrategy")
            .field("period", &self.interval.period())
            .finish()
    }
}

impl WakeStrategy {
    /// Must be called inside a tokio runtime.
    pub fn new(every: Duration, notify: Arc<Notify>) -> Self {
        let mut interval = tokio::time::interval(every);
        interval.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let notified = Box::pin(notify.clone().notified_owned());
        WakeStrategy {
            interval,
            notify,
            notified,
        }
    }
}

impl PollStrategy for WakeStrategy {
    fn poll_drive(&mut self, cx: &mut Context<'_>, _: &PollSnapshot) -> Poll<Option<()>> {
        let mut fired = false;
        // Poll until Pending so a waker is always registered for the next tick and push.
        while self.interval.poll_tick(cx).is_ready() {
            fired = true;
        }
        while self.notified.as_mut().poll(cx).is_ready() {
            fired = true;
            self.notified = Box::pin(self.notify.clone().notified_owned());
        }
        if fired {
            Poll::Ready(Some(()))
        } else {
            Poll::Pending
        }
    }
}

/// How long finished queue entries are kept.
pub const KEEP_DONE: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Delete queue entries that finished more than [`KEEP_DONE`] ago (nothing expires by itself).
/// The job rows keep the history.
pub async fn vacuum(pool: &sqlx::SqlitePool) -> Result<u64, sqlx::Error> {
    let _write = crate::db::write_permit().await;
    let r = sqlx::query(
        "DELETE FROM Jobs WHERE status IN ('Done', 'Killed', 'Failed') \
         AND done_at IS NOT NULL AND done_at < strftime('%s', 'now') - ?",
    )
    .bind(KEEP_DONE.as_secs() as i64)
    .execute(pool)
    .await?;
    Ok(r.rows_affected())
}
