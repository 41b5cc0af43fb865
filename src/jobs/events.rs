//! "Job X changed" signals for the event streams (`GET /api/jobs/{id}/events`).
//!
//! A signal carries no data: the stream re-reads the row (the row is the truth) and sends an
//! event when its version moved. Signals are delivered in-process at once and, with Redis, also
//! published on `{ns}:job:{id}` so a web process sees changes made by any worker process. Each
//! web process holds one pattern subscription (`{ns}:job:*`) and routes signals to its streams;
//! streams still re-read the row now and then, so a lost signal only delays an update.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::watch;

use super::queue::RedisQueue;

/// Signals of job changes, local and (with Redis) across processes.
#[derive(Clone, Debug, Default)]
pub struct JobEvents {
    watchers: Arc<Mutex<HashMap<String, Weak<watch::Sender<u64>>>>>,
    redis: Option<RedisQueue>,
}

impl JobEvents {
    /// Signals that also travel through `redis`.
    pub fn with_redis(redis: RedisQueue) -> Self {
        JobEvents {
            watchers: Arc::default(),
            redis: Some(redis),
        }
    }

    /// Whether signals reach other processes (then streams can poll the row rarely).
    pub fn crosses_processes(&self) -> bool {
        self.redis.is_some()
    }

    fn channel(ns: &str, job_id: &str) -> String {
        format!("{ns}:job:{job_id}")
    }

    /// Signal that job `job_id` changed: here at once, and through Redis without waiting for it
    /// (a lost signal only delays a stream until its next poll).
    pub fn changed(&self, job_id: &str) {
        self.wake_local(job_id);
        if let Some(redis) = &self.redis {
            let mut conn = redis.connection();
            let channel = Self::channel(redis.namespace(), job_id);
            tokio::spawn(async move {
                let _: Result<i64, _> = redis::cmd("PUBLISH")
                    .arg(channel)
                    .arg(1)
                    .query_async(&mut conn)
                    .await;
            });
        }
    }

    fn wake_local(&self, job_id: &str) {
        let sender = {
            let watchers = self.watchers.lock().expect("watchers");
            watchers.get(job_id).and_then(Weak::upgrade)
        };
        if let Some(s) = sender {
            s.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// Follow the change signals of `job_id`. A watch remembers signals it has not seen yet,
    /// so a change between a read of the row and the next wait is never missed.
    pub fn watch(&self, job_id: &str) -> Watch {
        let mut watchers = self.watchers.lock().expect("watchers");
        watchers.retain(|_, w| w.strong_count() > 0);
        let sender = match watchers.get(job_id).and_then(Weak::upgrade) {
            Some(s) => s,
            None => {
                let s = Arc::new(watch::channel(0u64).0);
                watchers.insert(job_id.to_owned(), Arc::downgrade(&s));
                s
            }
        };
        let receiver = sender.subscribe();
        Watch {
            _sender: sender,
            receiver,
        }
    }

    /// Route the signals published by every process to this process's streams; reconnects
    /// forever (streams poll meanwhile). Does nothing without Redis.
    pub async fn listen(self) {
        let Some(redis) = self.redis.clone() else {
            return;
        };
        let prefix = Self::channel(redis.namespace(), "");
        let mut failures = 0u32;
        loop {
            match redis.client().get_async_pubsub().await {
                Ok(mut pubsub) => match pubsub.psubscribe(format!("{prefix}*")).await {
                    Ok(()) => {
                        failures = 0;
                        let mut messages = pubsub.on_message();
                        while let Some(msg) = messages.next().await {
                            if let Some(id) = msg.get_channel_name().strip_prefix(&prefix) {
                                self.wake_local(id);
                            }
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "job event subscription failed"),
                },
                Err(e) => {
                    if failures == 0 {
                        tracing::warn!(error = %e, "job event subscription failed; retrying");
                    }
                }
            }
            failures = failures.saturating_add(1);
            tokio::time::sleep(Duration::from_millis(250 * u64::from(failures.min(8)))).await;
        }
    }
}

/// The change signals of one job, for one stream.
#[derive(Debug)]
pub struct Watch {
    /// Keeps the job's entry alive while a stream follows it.
    _sender: Arc<watch::Sender<u64>>,
    receiver: watch::Receiver<u64>,
}

impl Watch {
    /// Mark every signal so far as seen (call just before reading the row).
    pub fn mark_seen(&mut self) {
        self.receiver.borrow_and_update();
    }

    /// Resolves at the next signal not yet seen (at once if one came since [`Watch::mark_seen`]).
    pub async fn changed(&mut self) {
        // The sender lives in `self`, so this never fails.
        let _ = self.receiver.changed().await;
    }
}
