//! "Job X changed" signals for the event streams (`GET /api/jobs/{id}/events`).
//!
//! A signal carries no data: the stream re-reads the row (the row is the truth) and sends an
//! event when its version moved. Signals are delivered in-process at once and, with Redis, also
//! published on the channel `{ns}:jobs` so a web process sees changes made by any worker
//! process. Each web process holds one subscription to that channel and routes signals to its
//! streams; streams still re-read the row now and then, so a lost signal only delays an update.
//!
//! A worker signals every job twice (started, finished), thousands a second under load. A
//! `PUBLISH` per signal cost Redis and the worker more than the job's own queue commands, so a
//! publisher task sends whatever signals have gathered since its last `PUBLISH` as one message:
//! the job ids, one per line. Under light load that is one id per message, sent at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::{mpsc, watch};

use super::queue::RedisQueue;

/// Most job ids in one published message.
const MAX_IDS_PER_MESSAGE: usize = 512;
/// Signals waiting for the publisher at most (a few MB of ids): past it new ones are dropped,
/// so a Redis that stops answering cannot make this process's memory grow.
pub const MAX_SIGNALS_QUEUED: usize = 16_384;

/// The jobs this process's streams and waiting requests follow, each by the sender its
/// watches hold; an entry whose watches are all gone is swept out on a later [`JobEvents::watch`].
#[derive(Debug, Default)]
struct Watchers {
    by_job: HashMap<String, Weak<watch::Sender<u64>>>,
    /// Entries left after the last sweep: the next sweep waits until there are twice as many,
    /// so sweeping costs O(1) per watch however many jobs are followed.
    after_sweep: usize,
}

/// Signals of job changes, local and (with Redis) across processes.
#[derive(Clone, Debug, Default)]
pub struct JobEvents {
    watchers: Arc<Mutex<Watchers>>,
    redis: Option<RedisQueue>,
    /// The publisher task's inbox (with Redis).
    outbox: Option<mpsc::Sender<String>>,
}

impl JobEvents {
    /// Signals that also travel through `redis`. Starts the publisher task, so it must be
    /// called inside a tokio runtime; the task ends when the last clone is dropped.
    pub fn with_redis(redis: RedisQueue) -> Self {
        let (outbox, inbox) = mpsc::channel(MAX_SIGNALS_QUEUED);
        tokio::spawn(publish_forever(redis.clone(), inbox));
        JobEvents {
            watchers: Arc::default(),
            redis: Some(redis),
            outbox: Some(outbox),
        }
    }

    /// Whether signals reach other processes (then streams can poll the row rarely).
    pub fn crosses_processes(&self) -> bool {
        self.redis.is_some()
    }

    /// The channel every process publishes its signals on.
    pub fn channel(ns: &str) -> String {
        format!("{ns}:jobs")
    }

    /// Signal that job `job_id` changed: here at once, and through Redis without waiting for it
    /// (a lost signal only delays a stream until its next poll).
    pub fn changed(&self, job_id: &str) {
        self.wake_local(job_id);
        if let Some(outbox) = &self.outbox {
            // Fails when the publisher has stopped (the runtime is shutting down), or when
            // `MAX_SIGNALS_QUEUED` wait for a Redis that is slow to answer: a signal dropped
            // only delays the streams of its job until their next poll.
            let _ = outbox.try_send(job_id.to_owned());
        }
    }

    fn wake_local(&self, job_id: &str) {
        let sender = {
            let watchers = self.watchers.lock().expect("watchers");
            watchers.by_job.get(job_id).and_then(Weak::upgrade)
        };
        if let Some(s) = sender {
            s.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// Follow the change signals of `job_id`. A watch remembers signals it has not seen yet,
    /// so a change between a read of the row and the next wait is never missed.
    pub fn watch(&self, job_id: &str) -> Watch {
        let mut watchers = self.watchers.lock().expect("watchers");
        if watchers.by_job.len() >= 2 * watchers.after_sweep.max(32) {
            watchers.by_job.retain(|_, w| w.strong_count() > 0);
            watchers.after_sweep = watchers.by_job.len();
        }
        let sender = match watchers.by_job.get(job_id).and_then(Weak::upgrade) {
            Some(s) => s,
            None => {
                let s = Arc::new(watch::channel(0u64).0);
                watchers
                    .by_job
                    .insert(job_id.to_owned(), Arc::downgrade(&s));
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
        let channel = Self::channel(redis.namespace());
        let mut failures = 0u32;
        loop {
            match redis.client().get_async_pubsub().await {
                Ok(mut pubsub) => match pubsub.subscribe(&channel).await {
                    Ok(()) => {
                        failures = 0;
                        let mut messages = pubsub.on_message();
                        while let Some(msg) = messages.next().await {
                            for id in msg.get_payload_bytes().split(|b| *b == b'\n') {
                                if let Ok(id) = std::str::from_utf8(id) {
                                    self.wake_local(id);
                                }
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

/// Publish the signals that arrive in `inbox`: whatever has gathered while the last `PUBLISH`
/// was on its way goes out as the next one (ids one per line). A failed `PUBLISH` is dropped:
/// the streams it would have woken see the change at their next poll.
async fn publish_forever(redis: RedisQueue, mut inbox: mpsc::Receiver<String>) {
    let channel = JobEvents::channel(redis.namespace());
    let mut conn = redis.connection();
    let mut message = String::new();
    let mut failures = 0u32;
    while let Some(first) = inbox.recv().await {
        message.clear();
        message.push_str(&first);
        let mut ids = 1;
        while ids < MAX_IDS_PER_MESSAGE {
            match inbox.try_recv() {
                Ok(id) => {
                    message.push('\n');
                    message.push_str(&id);
                    ids += 1;
                }
                Err(_) => break,
            }
        }
        let sent: Result<i64, _> = redis::cmd("PUBLISH")
            .arg(&channel)
            .arg(&message)
            .query_async(&mut conn)
            .await;
        match sent {
            Ok(_) => failures = 0,
            Err(e) => {
                if failures == 0 {
                    tracing::warn!(error = %e, "publishing job change signals failed; streams will poll");
                }
                failures = failures.saturating_add(1);
                // Signals that gathered while Redis did not answer are stale by now, and the
                // streams poll meanwhile: drop them rather than let them pile up.
                while inbox.try_recv().is_ok() {}
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_of_jobs_no_longer_watched_are_swept_out_and_watched_ones_still_signal() {
        let events = JobEvents::default();
        let mut kept = events.watch("kept");
        for i in 0..10_000 {
            drop(events.watch(&format!("job-{i}")));
        }
        let entries = events.watchers.lock().unwrap().by_job.len();
        assert!(entries <= 64, "{entries} entries for one job watched");
        kept.mark_seen();
        events.changed("kept");
        assert!(kept.receiver.has_changed().unwrap());
    }
}
