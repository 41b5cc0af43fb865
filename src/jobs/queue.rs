//! The queues: the embedded apalis-sqlite queue (in the SQLite file) and the apalis-redis queue
//! (production), used by the job store ([`crate::jobs::store`]), and the wake-ups that make idle workers start at once.
//!
//! The job row is the record; a queue entry only says "look at job X". The payload on either
//! queue is the job id (a JSON string); the input is in `job_inputs`.
//!
//! - Embedded: the entry is pushed inside the row's transaction (both commit or neither).
//! - Redis: the row commits first, then the entry is pushed (retried once: the first command
//!   after a dropped connection can fail). If the push still fails the submission stands; the
//!   reconciler ([`crate::jobs::store::JobStore::reconcile`]) notices the queued row without a live entry
//!   and pushes it again.
//!
//! apalis 1.0 sharp edges handled here:
//! - Lost wake-ups: the built-in interval strategy fires once and never re-arms. [`WakeStrategy`]
//!   re-arms a tokio interval on every tick and also wakes on a [`Notify`] per queue, fired by
//!   pushes made in this process and, with Redis, by our pub/sub channel `{ns}:wake:{queue}`
//!   that every push publishes to ([`RedisQueue::listen_for_wakes`]).
//! - apalis-redis's own push puts every task in the *scheduled* set (its `run_at` is never 0),
//!   to be promoted by a later fetch on the pusher's clock in whole seconds. We push with our own
//!   script ([`PUSH_SCRIPT`]) straight onto the active list, in the key layout apalis-redis 1.0
//!   reads (data hash, meta hash, active list, signal list), and publish the wake-up in the same
//!   script: one round trip, and the woken fetch finds the task at once.
//! - The task id is `{job_id}:{attempts}`: one id per enqueue of a row, so the reconciler can
//!   look up whether a queued row has a live entry, and a finished entry's clean-up can never
//!   remove a newer entry of the same job.
//! - Queue names are explicit and namespaced (`{ns}:quick`, `{ns}:bulk`), never a Rust type
//!   name; every key and channel we or apalis use starts with `{ns}:` (apalis also keeps one
//!   global sorted set, `core:apalis:queues:list`, of queue names).
//! - Nothing expires in Redis by itself: [`RedisQueue::vacuum`] removes finished entries.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use apalis::prelude::{PollSnapshot, PollStrategy, TaskBuilder};
use futures_util::StreamExt;
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use sqlx::SqliteConnection;
use tokio::sync::Notify;
use tokio::sync::futures::OwnedNotified;
use tokio::time::{Interval, MissedTickBehavior, Sleep};

use super::model::StaleJob;

/// The queue payload: the job id.
pub type JobArgs = String;

/// Our queues: small inputs go to `quick`, large ones to `bulk`, so a flood of bulk work never
/// starves quick jobs. The name is part of every Redis key and of the apalis queue name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = Queue)]
pub enum QueueName {
    Quick,
    Bulk,
}

impl QueueName {
    pub const ALL: [QueueName; 2] = [QueueName::Quick, QueueName::Bulk];

    pub fn as_str(self) -> &'static str {
        match self {
            QueueName::Quick => "quick",
            QueueName::Bulk => "bulk",
        }
    }
}

impl AsRef<str> for QueueName {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl std::fmt::Display for QueueName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for QueueName {
    type Err = crate::db::UnknownValue;

    fn from_str(s: &str) -> Result<QueueName, Self::Err> {
        match s {
            "quick" => Ok(QueueName::Quick),
            "bulk" => Ok(QueueName::Bulk),
            _ => Err(crate::db::UnknownValue {
                kind: "queue",
                value: s.to_owned(),
            }),
        }
    }
}

crate::text_column!(QueueName);

/// Push a job id onto the embedded `queue` using the caller's connection or transaction:
/// committed together with the job row, or rolled back together with it. Entries of higher
/// `priority` are fetched first ([`super::fair::priority`]).
pub async fn enqueue(
    conn: &mut SqliteConnection,
    queue: QueueName,
    job_id: &str,
    delay: Option<Duration>,
    priority: usize,
) -> Result<(), apalis_sqlite::Error> {
    let args = serde_json::to_vec(job_id).map_err(apalis_sqlite::Error::JsonError)?;
    // One delivery attempt as far as apalis knows: retries are decided by the worker, counted in
    // the job row (the SQLite backend would otherwise re-fetch a failed task at once).
    let mut builder = TaskBuilder::new(args).max_attempts(1).priority(priority);
    if let Some(d) = delay {
        builder = builder.run_after(d);
    }
    apalis_sqlite::queries::push_tasks(conn, queue.as_str(), &[builder.build()]).await
}

/// Why a queue operation failed.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("embedded queue: {0}")]
    Embedded(#[source] apalis_sqlite::Error),
    #[error("Redis queue: {0}")]
    Redis(#[from] redis::RedisError),
}

impl QueueError {
    /// The queue is not reachable right now (worth a 503 and a retry). A refused command or
    /// a bad payload is a bug, not an outage.
    pub fn is_unavailable(&self) -> bool {
        match self {
            QueueError::Embedded(apalis_sqlite::Error::Database(e)) => crate::db::is_unavailable(e),
            QueueError::Embedded(_) => false,
            QueueError::Redis(e) => {
                e.is_io_error()
                    || e.is_connection_refusal()
                    || e.is_connection_dropped()
                    || e.is_timeout()
                    || e.is_unrecoverable_error()
            }
        }
    }
}

/// Most finished embedded entries removed per statement (a short hold of the one writer).
const VACUUM_EMBEDDED_BATCH: i64 = 5000;

/// Delete the embedded queue's finished entries, a few thousand per statement. They only say
/// "look at job X" and the job rows keep the history, so they go as soon as they finish
/// instead of piling up (they were kept a day, a table as large as a day of jobs).
pub async fn vacuum_embedded(pool: &sqlx::SqlitePool) -> Result<u64, sqlx::Error> {
    let mut removed = 0;
    loop {
        let _write = crate::db::write_permit().await;
        let n = sqlx::query(
            "DELETE FROM Jobs WHERE rowid IN (SELECT rowid FROM Jobs \
             WHERE status IN ('Done', 'Killed', 'Failed') AND done_at IS NOT NULL LIMIT ?)",
        )
        .bind(VACUUM_EMBEDDED_BATCH)
        .execute(pool)
        .await?
        .rows_affected();
        removed += n;
        if n < VACUUM_EMBEDDED_BATCH as u64 {
            return Ok(removed);
        }
    }
}

/// Our push, in the key layout apalis-redis 1.0 reads (see `lua/batch_push.lua` and
/// `lua/fetch_next.lua` in its sources): the payload in the data hash under the task id, the
/// metadata hash `{queue}:meta:{task id}`, and the id on the active list (or, delayed, in the
/// scheduled set scored in Unix seconds), then the signal list and our wake-up channel.
/// The entry is overwritten if the id exists: a re-push is always meant to be live.
pub const PUSH_SCRIPT: &str = r#"
-- KEYS: data hash, active list, scheduled set, signal list, meta key
-- ARGV: task id, payload, run_at (Unix seconds, 0 = now), wake channel
redis.call('hset', KEYS[1], ARGV[1], ARGV[2])
redis.call('del', KEYS[5])
redis.call('hset', KEYS[5], 'attempts', 0, 'max_attempts', 1, 'status', 'Pending', 'idempotency_key', '')
local run_at = tonumber(ARGV[3])
if run_at > 0 then
    redis.call('zadd', KEYS[3], run_at, ARGV[1])
else
    redis.call('rpush', KEYS[2], ARGV[1])
    redis.call('del', KEYS[4])
    redis.call('lpush', KEYS[4], 1)
    redis.call('publish', ARGV[4], ARGV[1])
end
return 1
"#;

/// Drop finished entries: the ids in the done and dead sets, with their data and metadata
/// (only if the metadata still says they are finished).
const VACUUM_SCRIPT: &str = r#"
-- KEYS: done set, dead set, data hash; ARGV: meta key prefix, batch size
local removed = 0
for s = 1, 2 do
    local ids = redis.call('spop', KEYS[s], tonumber(ARGV[2]))
    for _, id in ipairs(ids) do
        local meta = ARGV[1] .. ':' .. id
        local status = redis.call('hget', meta, 'status')
        if (not status) or status == 'Done' or status == 'Failed' or status == 'Killed' then
            redis.call('hdel', KEYS[3], id)
            redis.call('del', meta)
        end
        removed = removed + 1
    end
end
return removed
"#;

/// Most finished entries one vacuum script removes: Redis runs nothing else meanwhile, so each
/// call stays around a millisecond.
const VACUUM_BATCH: u64 = 200;

/// The apalis-redis queue of one namespace.
#[derive(Clone)]
pub struct RedisQueue {
    client: redis::Client,
    conn: ConnectionManager,
    namespace: String,
    push: Arc<redis::Script>,
    vacuum: Arc<redis::Script>,
    /// [`super::fair`]'s scripts: a push onto the owners' waiting lists, and a release.
    pub(super) fair_push: Arc<redis::Script>,
    pub(super) fair_release: Arc<redis::Script>,
}

impl std::fmt::Debug for RedisQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisQueue")
            .field("namespace", &self.namespace)
            .finish()
    }
}

/// The Redis client's response timeout. The default (500 ms) ends a worker on the first slow
/// answer (any fetch or heartbeat error stops an apalis worker).
pub const REDIS_RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

impl RedisQueue {
    /// A client of `url` (`redis://` or `rediss://`) whose connection is made on first use, so a
    /// process starts (and reports "not ready") while Redis is down.
    pub fn connect(url: &str, namespace: &str) -> Result<RedisQueue, redis::RedisError> {
        install_tls_provider();
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(REDIS_RESPONSE_TIMEOUT))
            .set_connection_timeout(Some(REDIS_RESPONSE_TIMEOUT))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(1));
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), config)?;
        let (fair_push, fair_release) = super::fair::scripts();
        Ok(RedisQueue {
            client,
            conn,
            namespace: namespace.to_owned(),
            push: Arc::new(redis::Script::new(PUSH_SCRIPT)),
            vacuum: Arc::new(redis::Script::new(VACUUM_SCRIPT)),
            fair_push: Arc::new(fair_push),
            fair_release: Arc::new(fair_release),
        })
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The client (for dedicated connections such as subscriptions).
    pub fn client(&self) -> &redis::Client {
        &self.client
    }

    /// A connection (multiplexed, shared; cheap to clone).
    pub fn connection(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// The apalis queue name of our queue `queue`.
    pub fn queue_name(&self, queue: QueueName) -> String {
        format!("{}:{queue}", self.namespace)
    }

    /// The apalis configuration of our queue `queue` (keys and timing).
    pub fn config(&self, queue: QueueName) -> apalis_redis::Config {
        apalis_redis::Config::default().queue(self.queue_name(queue))
    }

    /// Our wake-up channel of `queue`.
    pub fn wake_channel(&self, queue: QueueName) -> String {
        format!("{}:wake:{queue}", self.namespace)
    }

    /// The task id of a job's entry while the row's attempt counter is `attempts`.
    pub fn task_id(job_id: &str, attempts: i64) -> String {
        format!("{job_id}:{attempts}")
    }

    /// Push job `job_id` (row attempt counter `attempts`) onto `queue`, once more if the first
    /// try fails (a dropped connection fails the first command after it).
    pub async fn push(
        &self,
        queue: QueueName,
        job_id: &str,
        attempts: i64,
        delay: Option<Duration>,
    ) -> Result<(), redis::RedisError> {
        match self.push_once(queue, job_id, attempts, delay).await {
            Ok(()) => Ok(()),
            Err(first) => {
                tracing::debug!(job_id, error = %first, "push failed; retrying once");
                self.push_once(queue, job_id, attempts, delay).await
            }
        }
    }

    /// Push the first entries of new jobs (`(queue, job id, share)`, attempt counter 0) onto
    /// their owners' waiting lists ([`super::fair`]): one round trip per queue, retried once
    /// like [`RedisQueue::push`]. A failure is logged (once) and left to the reconciler, as the
    /// rows are committed already.
    pub async fn push_new_or_log(&self, jobs: &[(QueueName, &str, &super::fair::Share)]) {
        for queue in QueueName::ALL {
            let entries: Vec<(&str, &super::fair::Share)> = jobs
                .iter()
                .filter(|(q, _, _)| *q == queue)
                .map(|(_, id, share)| (*id, *share))
                .collect();
            if entries.is_empty() {
                continue;
            }
            if let Err(e) = self.push_fair(queue, &entries).await {
                tracing::warn!(jobs = entries.len(), queue = queue.as_str(), error = %e, "queue push failed; the reconciler will enqueue the jobs");
            }
        }
    }

    /// [`RedisQueue::push`]; a failure is logged (once) and left to the reconciler.
    pub async fn push_or_log(
        &self,
        queue: QueueName,
        job_id: &str,
        attempts: i64,
        delay: Option<Duration>,
    ) {
        if let Err(e) = self.push(queue, job_id, attempts, delay).await {
            tracing::warn!(job_id, queue = queue.as_str(), error = %e, "queue push failed; the reconciler will enqueue the job");
        }
    }

    async fn push_once(
        &self,
        queue: QueueName,
        job_id: &str,
        attempts: i64,
        delay: Option<Duration>,
    ) -> Result<(), redis::RedisError> {
        let config = self.config(queue);
        let task_id = Self::task_id(job_id, attempts);
        let payload = serde_json::to_vec(job_id).expect("a string serialises");
        let run_at = match delay {
            Some(d) if !d.is_zero() => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default();
                (now + d).as_secs_f64().ceil() as u64
            }
            _ => 0,
        };
        let mut conn = self.conn.clone();
        self.push
            .key(config.job_data_hash())
            .key(config.active_jobs_list())
            .key(config.scheduled_jobs_set())
            .key(config.signal_list())
            .key(format!("{}:{task_id}", config.job_meta_hash()))
            .arg(&task_id)
            .arg(payload)
            .arg(run_at)
            .arg(self.wake_channel(queue))
            .invoke_async::<i64>(&mut conn)
            .await?;
        Ok(())
    }

    /// For each job, whether its current queue entry (`{id}:{attempts}`) is live: waiting,
    /// fetched or running. One pipelined round trip.
    pub async fn live_entries(&self, jobs: &[StaleJob]) -> Result<Vec<bool>, redis::RedisError> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for job in jobs {
            let meta = format!(
                "{}:{}",
                self.config(job.queue).job_meta_hash(),
                Self::task_id(&job.id, job.attempts)
            );
            pipe.hget(meta, "status");
        }
        let mut conn = self.conn.clone();
        let statuses: Vec<Option<String>> = pipe.query_async(&mut conn).await?;
        Ok(statuses
            .into_iter()
            .map(|s| matches!(s.as_deref(), Some("Pending" | "Queued" | "Running")))
            .collect())
    }

    /// Remove finished entries of both queues; returns how many.
    pub async fn vacuum(&self) -> Result<u64, redis::RedisError> {
        let mut removed = 0;
        let mut conn = self.conn.clone();
        for queue in QueueName::ALL {
            let config = self.config(queue);
            loop {
                let n: u64 = self
                    .vacuum
                    .key(config.done_jobs_set())
                    .key(config.dead_jobs_set())
                    .key(config.job_data_hash())
                    .arg(config.job_meta_hash())
                    .arg(VACUUM_BATCH)
                    .invoke_async(&mut conn)
                    .await?;
                removed += n;
                if n < VACUUM_BATCH {
                    break;
                }
            }
        }
        Ok(removed)
    }

    /// Delete the metadata hashes apalis keeps for every worker name (one per start and restart,
    /// never removed) of workers that are no longer registered.
    pub async fn remove_dead_worker_metadata(&self) -> Result<u64, redis::RedisError> {
        let mut conn = self.conn.clone();
        let mut removed = 0;
        for queue in QueueName::ALL {
            let config = self.config(queue);
            let prefix = format!("{}:metadata:", config.workers_set());
            let live: Vec<String> = conn.zrange(config.workers_set(), 0, -1).await?;
            let keys: Vec<String> = {
                let mut scan = conn.scan_match::<_, String>(format!("{prefix}*")).await?;
                let mut keys = Vec::new();
                while let Some(k) = scan.next().await {
                    keys.push(k?);
                }
                keys
            };
            for key in keys {
                let name = &key[prefix.len()..];
                if !live.iter().any(|l| l == name) {
                    let _: () = conn.del(&key).await?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    pub async fn ping(&self) -> Result<(), QueueError> {
        let mut conn = self.conn.clone();
        let answer = tokio::time::timeout(
            Duration::from_secs(2),
            redis::cmd("PING").query_async::<String>(&mut conn),
        )
        .await
        .map_err(|_| {
            redis::RedisError::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "Redis did not answer PING",
            ))
        })??;
        if answer == "PONG" {
            Ok(())
        } else {
            Err(redis::RedisError::from(std::io::Error::other("unexpected PING answer")).into())
        }
    }

    /// Entries pending (on apalis's list), scheduled and waiting (on their owners' lists, for
    /// their fair share), by queue.
    pub async fn entry_counts(&self) -> Result<Vec<(String, String, i64)>, QueueError> {
        let mut pipe = redis::pipe();
        for queue in QueueName::ALL {
            let config = self.config(queue);
            pipe.llen(config.active_jobs_list())
                .zcard(config.scheduled_jobs_set());
        }
        let mut conn = self.conn.clone();
        let n: Vec<i64> = pipe.query_async(&mut conn).await?;
        let (quick_waiting, bulk_waiting) = (
            self.waiting(QueueName::Quick).await?,
            self.waiting(QueueName::Bulk).await?,
        );
        Ok(vec![
            ("bulk".into(), "pending".into(), n[2]),
            ("bulk".into(), "scheduled".into(), n[3]),
            ("bulk".into(), "waiting".into(), bulk_waiting),
            ("quick".into(), "pending".into(), n[0]),
            ("quick".into(), "scheduled".into(), n[1]),
            ("quick".into(), "waiting".into(), quick_waiting),
        ])
    }

    /// Subscribe to the wake-up channels of `queues` and wake this process's idle workers of a
    /// queue whenever something is pushed onto it, from any process; reconnects forever. After
    /// every (re)subscription all queues are woken once, in case a wake-up was missed meanwhile.
    pub async fn listen_for_wakes(self, queues: Vec<QueueName>, wakers: Wakers) {
        let channels: HashMap<String, QueueName> =
            queues.iter().map(|&q| (self.wake_channel(q), q)).collect();
        let mut failures = 0u32;
        loop {
            match self.client.get_async_pubsub().await {
                Ok(mut pubsub) => {
                    let mut ok = true;
                    for channel in channels.keys() {
                        if let Err(e) = pubsub.subscribe(channel).await {
                            tracing::warn!(error = %e, "wake-up subscription failed");
                            ok = false;
                            break;
                        }
                    }
                    if ok {
                        failures = 0;
                        for &q in &queues {
                            wakers.wake(q);
                        }
                        let mut messages = pubsub.on_message();
                        while let Some(msg) = messages.next().await {
                            if let Some(q) = channels.get(msg.get_channel_name()) {
                                wakers.wake(*q);
                            }
                        }
                        tracing::warn!("wake-up subscription closed; reconnecting");
                    }
                }
                Err(e) => {
                    if failures == 0 {
                        tracing::warn!(error = %e, "wake-up subscription failed; retrying");
                    }
                }
            }
            failures = failures.saturating_add(1);
            tokio::time::sleep(Duration::from_millis(250 * u64::from(failures.min(8)))).await;
        }
    }
}

/// rustls needs a process-wide crypto provider for `rediss://`; install ring's once.
fn install_tls_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// One [`Notify`] per queue, shared by the code that pushes (web handlers, retries, the
/// reconciler, the Redis wake-up listener) and the workers that wait on it.
#[derive(Clone, Debug)]
pub struct Wakers {
    by_queue: Arc<HashMap<QueueName, Arc<Notify>>>,
}

impl Default for Wakers {
    fn default() -> Self {
        let by_queue = QueueName::ALL
            .into_iter()
            .map(|q| (q, Arc::new(Notify::new())))
            .collect();
        Wakers {
            by_queue: Arc::new(by_queue),
        }
    }
}

impl Wakers {
    pub fn get(&self, queue: QueueName) -> Arc<Notify> {
        self.by_queue
            .get(&queue)
            .cloned()
            .unwrap_or_else(|| Arc::new(Notify::new()))
    }

    /// Wake the idle workers of `queue` in this process.
    pub fn wake(&self, queue: QueueName) {
        if let Some(n) = self.by_queue.get(&queue) {
            n.notify_waiters();
        }
    }
}

/// After a wake-up, wake the worker once more this much later: a fetch already in flight when
/// the wake-up arrived may have run before the push (and the wake-up is consumed by then).
const ECHO: Duration = Duration::from_millis(5);

/// Wake the worker on every tick of an interval (re-armed each time), on every wake-up of its
/// queue, and once more [`ECHO`] after a wake-up.
pub struct WakeStrategy {
    interval: Interval,
    notify: Arc<Notify>,
    notified: Pin<Box<OwnedNotified>>,
    echo: Option<Pin<Box<Sleep>>>,
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
            echo: None,
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
        let mut woken = false;
        while self.notified.as_mut().poll(cx).is_ready() {
            woken = true;
            self.notified = Box::pin(self.notify.clone().notified_owned());
        }
        if let Some(echo) = self.echo.as_mut()
            && echo.as_mut().poll(cx).is_ready()
        {
            self.echo = None;
            fired = true;
        }
        if woken {
            fired = true;
            if self.echo.is_none() {
                let mut echo = Box::pin(tokio::time::sleep(ECHO));
                let _ = echo.as_mut().poll(cx);
                self.echo = Some(echo);
            }
        }
        if fired {
            Poll::Ready(Some(()))
        } else {
            Poll::Pending
        }
    }
}
