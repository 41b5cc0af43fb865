//! Group commit of submissions: every job row, its input and its queue entry still go in one
//! transaction, but submissions that arrive together share that transaction.
//!
//! SQLite has one writer. When every submission opens its own transaction, concurrent requests
//! queue for the write lock one by one, and a request's latency grows with the number of
//! requests ahead of it (16 clients at ~0.6 ms per transaction put p50 near 10 ms). Here the web
//! handlers hand their [`NewJob`] to one writer task and wait; the writer takes whatever has
//! arrived since its last commit (up to [`MAX_BATCH_JOBS`] jobs or [`MAX_BATCH_BYTES`] of input),
//! writes it all in one transaction and answers each handler after the commit. Under load a
//! request therefore waits for at most about one commit ahead of it, whatever the concurrency;
//! an isolated request is written at once, as before.
//!
//! Atomicity per job is unchanged: a job's row and queue entry are committed together or not at
//! all. If a batch fails, it is rolled back and its jobs are written again one by one, so one bad
//! job cannot fail the others.
//!
//! With Redis the rows of a batch commit in one statement
//! ([`model::create_many`]) and then their entries are pushed in one round trip per queue
//! ([`RedisQueue::push_new_or_log`]), each handler answered after the push; as with single
//! submissions, a failed push leaves the committed rows to the reconciler. PostgreSQL is not
//! limited to one writer, so several batches are in flight at once ([`REDIS_WRITERS`]): while
//! one waits for its commit to reach the disk, the next one is being sent.

use std::time::Duration;

use super::batch::Batcher;
use super::model::{self, NewJob};
use super::queue::{self, Queue, Wakers};
use crate::db::Db;

/// Most jobs written in one transaction.
pub const MAX_BATCH_JOBS: usize = 128;
/// Most input bytes written in one transaction (a single larger job is written alone).
pub const MAX_BATCH_BYTES: usize = 4 << 20;
/// How long a busy writer waits for more submissions before it writes, with Redis (a lone
/// submission is written at once). At 5,000 submissions a second this cut the CPU of `serve`'s
/// PostgreSQL backends from about 75 to 40 µs per job (BENCHMARKS.md).
pub const LINGER: Duration = Duration::from_millis(2);
/// Batches in flight at once with Redis (each holds one database connection while it writes).
pub const REDIS_WRITERS: usize = 4;

/// The handle the web handlers use; cheap to clone.
#[derive(Clone, Debug)]
pub struct Submitter {
    writers: Batcher<NewJob, Result<(), sqlx::Error>>,
}

impl Submitter {
    /// Start the writer tasks (must be called inside a tokio runtime). They end when the last
    /// handle is dropped.
    pub fn start(db: Db, queue: Queue, wakers: Wakers) -> Submitter {
        let (writers, linger) = writers_and_linger(&queue);
        let input_bytes: fn(&NewJob) -> usize = |job| job.input.len();
        let writers = Batcher::start_weighted(
            writers,
            MAX_BATCH_JOBS,
            linger,
            (MAX_BATCH_BYTES, input_bytes),
            move |jobs: Vec<NewJob>| {
                let (db, queue, wakers) = (db.clone(), queue.clone(), wakers.clone());
                async move { write_batch(&db, &queue, &wakers, &jobs).await }
            },
        );
        Submitter { writers }
    }

    /// Write the job row, its input and its queue entry; returns once they are committed (and,
    /// with Redis, once the push has been answered or has failed).
    pub async fn submit(&self, job: NewJob) -> Result<(), sqlx::Error> {
        self.writers
            .call(job)
            .await
            .unwrap_or(Err(sqlx::Error::PoolClosed))
    }
}

/// How many batches may be in flight at once and how long a busy writer waits for more.
fn writers_and_linger(queue: &Queue) -> (usize, Duration) {
    match queue {
        // SQLite has one writer: a second batch would only wait for the first, and batches
        // already gather while it writes; a linger would only add latency.
        Queue::Embedded => (1, Duration::ZERO),
        Queue::Redis(_) => (REDIS_WRITERS, LINGER),
    }
}

/// Write `batch` in one transaction, or (if that fails) each job in its own; push the queue
/// entries (Redis) and wake the local workers. One result per job, in order.
async fn write_batch(
    db: &Db,
    queue: &Queue,
    wakers: &Wakers,
    batch: &[NewJob],
) -> Vec<Result<(), sqlx::Error>> {
    let jobs: Vec<&NewJob> = batch.iter().collect();
    let together = write_jobs(db, queue, &jobs).await;
    let results: Vec<Result<(), sqlx::Error>> = match together {
        Ok(()) => batch.iter().map(|_| Ok(())).collect(),
        Err(e) if batch.len() == 1 => vec![Err(e)],
        Err(e) => {
            tracing::warn!(jobs = batch.len(), error = %e, "batched submission failed; writing its jobs one by one");
            let mut each = Vec::with_capacity(batch.len());
            for job in &jobs {
                each.push(write_jobs(db, queue, std::slice::from_ref(job)).await);
            }
            each
        }
    };
    if let Queue::Redis(redis) = queue {
        let written: Vec<(&str, String)> = batch
            .iter()
            .zip(&results)
            .filter(|(_, r)| r.is_ok())
            .map(|(j, _)| (j.queue, j.id.to_string()))
            .collect();
        redis.push_new_or_log(&written).await;
    }
    for (job, result) in batch.iter().zip(&results) {
        if result.is_ok() {
            wakers.wake(job.queue);
        }
    }
    results
}

async fn write_jobs(db: &Db, queue: &Queue, jobs: &[&NewJob]) -> Result<(), sqlx::Error> {
    match (queue, db) {
        (Queue::Embedded, Db::Sqlite(pool)) => {
            let _write = crate::db::write_permit().await;
            let mut tx = pool.begin().await?;
            model::insert_many(&mut tx, jobs).await?;
            for job in jobs {
                queue::enqueue(&mut tx, job.queue, &job.id.to_string(), None)
                    .await
                    .map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
            }
            tx.commit().await
        }
        (Queue::Redis(_), db) => model::create_many(db, jobs).await,
        // Refused at start-up (`Config::check`); kept as an error, never a half-written job.
        (Queue::Embedded, Db::Postgres(_)) => Err(sqlx::Error::Configuration(
            "the embedded queue needs a SQLite database".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::queue::RedisQueue;

    #[tokio::test]
    async fn submissions_linger_and_write_in_parallel_with_redis_but_not_on_embedded_sqlite() {
        assert_eq!(writers_and_linger(&Queue::Embedded), (1, Duration::ZERO));
        // The client connects lazily: nothing needs to listen on this port.
        let redis = RedisQueue::connect("redis://127.0.0.1:1", "t").unwrap();
        let (writers, linger) = writers_and_linger(&Queue::Redis(Box::new(redis)));
        assert_eq!(writers, REDIS_WRITERS);
        assert!(writers > 1);
        assert_eq!(linger, LINGER);
        assert!(linger > Duration::ZERO);
    }
}
