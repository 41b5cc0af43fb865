//! The distributed store: the rows in PostgreSQL (or SQLite), the queue in Redis, any number of
//! web and worker processes.
//!
//! The row commits first, then its entry is pushed (retried once: the first command after a
//! dropped connection can fail). If the push still fails the change stands and the reconciler
//! finds the queued row without a live entry and pushes it again. On PostgreSQL a worker's
//! claims and finishes are group-committed ([`RunWrites`]); wake-ups travel through Redis
//! pub/sub, published by the push itself.

use std::time::Duration;

use tokio::task::JoinHandle;

use super::StoreError;
use crate::db::Db;
use crate::jobs::batch::{Batcher, RunWrites};
use crate::jobs::fair::Share;
use crate::jobs::model::{self, Claimed, Finish, JobRow, NewJob, StaleJob, Status};
use crate::jobs::queue::{QueueName, RedisQueue, Wakers};

/// Batches of new jobs in flight at once (each holds one database connection while it writes):
/// while one waits for its commit to reach the disk, the next one is being sent.
pub const WRITERS: usize = 4;
/// How long a busy writer waits for more submissions before it writes (a lone submission is
/// written at once): fewer, larger statements under load.
pub const LINGER: Duration = Duration::from_millis(2);
/// How often finished Redis entries are removed: in small, steady pieces, so no clean-up holds
/// Redis (and every push waiting behind it) for long.
pub const VACUUM_EVERY: Duration = Duration::from_millis(250);
/// Stale candidates the reconciler checks against Redis per round trip.
const RECONCILE_PAGE: i64 = 500;

#[derive(Clone, Debug)]
pub struct Distributed {
    db: Db,
    redis: RedisQueue,
    /// PostgreSQL: this process's claims and finishes, group-committed.
    run_writes: Option<RunWrites>,
    wakers: Wakers,
    /// How long a succeeded job's data is kept (`RESULT_TTL`; None: forever).
    result_ttl: Option<Duration>,
    /// Ended deliveries give back their owners' slots ([`crate::jobs::fair`]) a batch at a time.
    releases: Batcher<String, ()>,
}

/// Most ended jobs released in one script.
const RELEASE_BATCH: usize = 256;

impl Distributed {
    pub(super) fn new(
        db: Db,
        redis: RedisQueue,
        wakers: Wakers,
        result_ttl: Option<Duration>,
    ) -> Distributed {
        let run_writes = match &db {
            Db::Postgres(pool) => Some(RunWrites::start(pool.clone(), result_ttl)),
            Db::Sqlite(_) => None,
        };
        let releaser = redis.clone();
        let releases = Batcher::start(1, RELEASE_BATCH, Duration::ZERO, move |ids: Vec<String>| {
            let redis = releaser.clone();
            async move {
                let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
                // The job ids say nothing of their queue: each queue ignores the others' ids.
                for queue in QueueName::ALL {
                    if let Err(e) = redis.release(queue, &refs).await {
                        tracing::warn!(jobs = refs.len(), queue = queue.as_str(), error = %e, "fair-share release failed; the reconciler will release the jobs");
                    }
                }
                vec![(); ids.len()]
            }
        });
        Distributed {
            db,
            redis,
            run_writes,
            wakers,
            result_ttl,
            releases,
        }
    }

    pub(super) fn db(&self) -> &Db {
        &self.db
    }

    pub(super) fn wakers(&self) -> &Wakers {
        &self.wakers
    }

    /// The Redis queue the apalis-redis workers fetch from.
    pub(super) fn redis(&self) -> &RedisQueue {
        &self.redis
    }

    pub(super) async fn write_new(&self, jobs: &[&NewJob]) -> Result<Vec<bool>, StoreError> {
        Ok(model::create_many(&self.db, jobs).await?)
    }

    pub(super) async fn announce_new(&self, jobs: &[&NewJob]) {
        let ids: Vec<String> = jobs.iter().map(|j| j.id.to_string()).collect();
        let shares: Vec<Share> = jobs.iter().map(|j| j.share()).collect();
        let written: Vec<(QueueName, &str, &Share)> = jobs
            .iter()
            .zip(&ids)
            .zip(&shares)
            .map(|((j, id), share)| (j.queue, id.as_str(), share))
            .collect();
        self.redis.push_new_or_log(&written).await;
        for job in jobs {
            self.wakers.wake(job.queue);
        }
    }

    pub(super) fn writers_and_linger(&self) -> (usize, Duration) {
        (WRITERS, LINGER)
    }

    pub(super) async fn claim(&self, id: &str) -> Result<Option<Claimed>, StoreError> {
        let claimed = match &self.run_writes {
            Some(writes) => writes.claim(id).await?,
            None => model::claim_with_input(&self.db, id).await?,
        };
        if let Some(c) = &claimed
            && c.job.queue == QueueName::Bulk
        {
            // `bulk`'s active list is one entry deep and this claim may have emptied it: feed
            // it now rather than at the next release, so another free slot does not idle.
            self.feed_soon(QueueName::Bulk);
        }
        Ok(claimed)
    }

    /// A delivery of job `id` ended without a new entry of its own: its owner's slot is free.
    pub(super) async fn delivery_ended(&self, id: &str) {
        self.releases.call(id.to_owned()).await;
    }

    /// Feed `queue` from the owners' waiting lists, in the background.
    fn feed_soon(&self, queue: QueueName) {
        let redis = self.redis.clone();
        tokio::spawn(async move {
            if let Err(e) = redis.release(queue, &[]).await {
                tracing::debug!(queue = queue.as_str(), error = %e, "feed failed");
            }
        });
    }

    /// Feed every queue (the safety net under the feeds of pushes, claims and releases).
    pub(super) async fn feed(&self) -> Result<(), StoreError> {
        for queue in QueueName::ALL {
            self.redis.release(queue, &[]).await?;
        }
        Ok(())
    }

    /// Release the slots of dispatched jobs that are no longer open (a release lost with its
    /// process, or never sent). Returns how many.
    async fn heal_dispatched(&self) -> Result<usize, StoreError> {
        let mut healed = 0;
        for queue in QueueName::ALL {
            let mut cursor = 0;
            loop {
                let (next, ids) = self.redis.dispatched(queue, cursor).await?;
                let open = model::open_among(&self.db, &ids).await?;
                let ended: Vec<&str> = ids
                    .iter()
                    .map(String::as_str)
                    .filter(|id| !open.iter().any(|o| o == id))
                    .collect();
                if !ended.is_empty() {
                    self.redis.release(queue, &ended).await?;
                    healed += ended.len();
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        Ok(healed)
    }

    pub(super) async fn finish(&self, run: Finish) -> Result<bool, StoreError> {
        Ok(match &self.run_writes {
            Some(writes) => writes.finish(run).await?,
            None => {
                let (id, attempt, ttl) = (&run.id, run.attempt, self.result_ttl);
                model::finish(&self.db, id, attempt, &run.report_json, &run.items, ttl).await?
            }
        })
    }

    pub(super) async fn requeue(
        &self,
        job: &JobRow,
        delay: Option<Duration>,
    ) -> Result<bool, StoreError> {
        if !model::requeue(&self.db, &job.id, job.attempts).await? {
            return Ok(false);
        }
        self.redis
            .push_or_log(job.queue, &job.id, job.attempts, delay)
            .await;
        Ok(true)
    }

    pub(super) async fn retry(&self, id: &str) -> Result<Option<JobRow>, StoreError> {
        let job = model::retry(&self.db, id).await?;
        if let Some(job) = &job {
            self.redis
                .push_or_log(job.queue, &job.id, job.attempts, None)
                .await;
        }
        Ok(job)
    }

    pub(super) async fn reconcile(&self, stale_before: &str) -> Result<Vec<StaleJob>, StoreError> {
        let mut done = Vec::new();
        let mut after: Option<(String, String)> = None;
        loop {
            let page = model::stale_candidates(
                &self.db,
                stale_before,
                after.as_ref().map(|(a, b)| (a.as_str(), b.as_str())),
                RECONCILE_PAGE,
            )
            .await?;
            let Some(last) = page.last() else { break };
            after = Some((last.updated_at.to_string(), last.id.clone()));
            let live = self.redis.live_entries(&page).await?;
            for (job, live) in page.iter().zip(live) {
                // A running row past its lease is re-enqueued whatever Redis says: its worker
                // stopped refreshing the lease, so it is presumed dead.
                if job.status == Status::Queued && live {
                    continue;
                }
                if model::reset_stale(&self.db, job, stale_before).await? {
                    self.redis
                        .push(job.queue, &job.id, job.attempts, None)
                        .await?;
                    done.push(job.clone());
                }
            }
            if (page.len() as i64) < RECONCILE_PAGE {
                break;
            }
        }
        match self.heal_dispatched().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(jobs = n, "fair-share slots of ended jobs released"),
            Err(e) => tracing::warn!(error = %e, "fair-share slot clean-up failed"),
        }
        Ok(done)
    }

    pub(super) async fn vacuum(&self) -> Result<u64, StoreError> {
        Ok(self.redis.vacuum().await?)
    }

    pub(super) fn vacuum_every(&self, reconcile_every: Duration) -> Duration {
        VACUUM_EVERY.min(reconcile_every)
    }

    /// apalis-redis keeps a small hash per worker name forever, and names are unique per start.
    pub(super) async fn forget_dead_workers(&self) -> Result<u64, StoreError> {
        Ok(self.redis.remove_dead_worker_metadata().await?)
    }

    pub(super) async fn ping_queue(&self) -> Result<(), StoreError> {
        Ok(self.redis.ping().await?)
    }

    pub(super) async fn entry_counts(&self) -> Result<Vec<(String, String, i64)>, StoreError> {
        Ok(self.redis.entry_counts().await?)
    }

    pub(super) fn listen_for_wakes(&self, queues: Vec<QueueName>) -> Option<JoinHandle<()>> {
        Some(tokio::spawn(
            self.redis
                .clone()
                .listen_for_wakes(queues, self.wakers.clone()),
        ))
    }
}
