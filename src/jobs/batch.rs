//! Group commit: [`Batcher`] gathers requests that arrive together and writes them in one
//! statement. The web process's submissions use it ([`super::submitter`]), and here the worker's
//! per-job writes on PostgreSQL: the claim that starts a job and the final write that finishes it.
//!
//! A small job costs far more in database round trips and commits than in analysis: claimed
//! alone, each job is one `UPDATE ... RETURNING` and one commit; finished alone, one more
//! transaction. Here the runs of a worker process hand their claim or finish to a few writer
//! tasks and wait; a writer takes whatever has arrived since its last statement (up to
//! `max` requests) and writes it all in one statement ([`model::claim_many`],
//! [`model::finish_many`]). Under load a run waits for about one statement ahead of it; a lone
//! run is written at once, as before. The per-job semantics do not change: every row is still
//! updated only if it is in the expected state (and attempt), and each run learns whether its
//! own row was updated.
//!
//! If a batched statement fails, its requests are written again one by one, so one bad row
//! cannot fail the others and each run gets its own error.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use sqlx::PgPool;
use std::time::Duration;

use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{Mutex, mpsc, oneshot};

use super::model::{self, Claimed, Finish};

type Envelope<Req, Resp> = (Req, oneshot::Sender<Resp>);

/// A handle to the writer tasks of one kind of request; cheap to clone.
#[derive(Debug)]
pub struct Batcher<Req, Resp> {
    tx: mpsc::Sender<Envelope<Req, Resp>>,
}

impl<Req, Resp> Clone for Batcher<Req, Resp> {
    fn clone(&self) -> Self {
        Batcher {
            tx: self.tx.clone(),
        }
    }
}

impl<Req: Send + 'static, Resp: Send + 'static> Batcher<Req, Resp> {
    /// Start `writers` tasks (inside a tokio runtime) that take up to `max` requests at a time
    /// and answer them with `write`, which must return one response per request, in order.
    /// Under load (the writer's previous batch held more than one request) a writer waits up to
    /// `linger` after the first request of a batch for more to arrive; a lone request is written
    /// at once. The tasks end when the last handle is dropped.
    pub fn start<F, Fut>(writers: usize, max: usize, linger: Duration, write: F) -> Self
    where
        F: Fn(Vec<Req>) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Vec<Resp>> + Send,
    {
        Self::start_weighted(writers, max, linger, (usize::MAX, |_| 0), write)
    }

    /// [`Batcher::start`], with batches also limited by weight: `(limit, weight)` keeps the sum
    /// of `weight(request)` in one batch at or under `limit`, except that a single heavier request
    /// is written alone. A request that does not fit starts its writer's next batch.
    pub fn start_weighted<F, Fut>(
        writers: usize,
        max: usize,
        linger: Duration,
        (limit, weight): (usize, fn(&Req) -> usize),
        write: F,
    ) -> Self
    where
        F: Fn(Vec<Req>) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Vec<Resp>> + Send,
    {
        let (tx, rx) = mpsc::channel::<Envelope<Req, Resp>>(4 * max);
        let inbox = Arc::new(Mutex::new(rx));
        for _ in 0..writers.max(1) {
            let (inbox, write) = (inbox.clone(), write.clone());
            tokio::spawn(async move {
                let mut batch: Vec<Envelope<Req, Resp>> = Vec::with_capacity(max);
                let mut carried: Option<Envelope<Req, Resp>> = None;
                let mut busy = false;
                loop {
                    {
                        // One writer collects at a time; the others write theirs meanwhile. A
                        // request carried over from this writer's last batch is written now,
                        // with whatever else is waiting if the inbox is free: another writer
                        // may be parked on the inbox with nothing more coming, and waiting for
                        // it would strand the carried request.
                        let (first, mut rx) = match carried.take() {
                            Some(first) => (first, inbox.try_lock().ok()),
                            None => {
                                let mut rx = inbox.lock().await;
                                match rx.recv().await {
                                    Some(first) => (first, Some(rx)),
                                    None => return,
                                }
                            }
                        };
                        let mut weight_sum = weight(&first.0);
                        batch.push(first);
                        let deadline = tokio::time::Instant::now() + linger;
                        while let Some(rx) = rx.as_mut().filter(|_| batch.len() < max) {
                            let next = match rx.try_recv() {
                                Ok(next) => next,
                                Err(TryRecvError::Empty) if busy && !linger.is_zero() => {
                                    // Each statement costs the database far more than a row
                                    // does; waiting a moment under load halves the statements.
                                    match tokio::time::timeout_at(deadline, rx.recv()).await {
                                        Ok(Some(next)) => next,
                                        _ => break,
                                    }
                                }
                                Err(_) => break,
                            };
                            let w = weight(&next.0);
                            if weight_sum.saturating_add(w) > limit {
                                carried = Some(next);
                                break;
                            }
                            weight_sum += w;
                            batch.push(next);
                        }
                    }
                    busy = batch.len() > 1;
                    let (requests, replies): (Vec<Req>, Vec<oneshot::Sender<Resp>>) =
                        batch.drain(..).unzip();
                    let n = requests.len();
                    let responses = write(requests).await;
                    debug_assert_eq!(responses.len(), n, "one response per request");
                    for (reply, response) in replies.into_iter().zip(responses) {
                        // The caller may have gone (its task was aborted, its client hung up):
                        // nothing to tell.
                        let _ = reply.send(response);
                    }
                }
            });
        }
        Batcher { tx }
    }

    /// Hand `request` to a writer and wait for its response; None if the writers have stopped.
    pub async fn call(&self, request: Req) -> Option<Resp> {
        let (reply, answer) = oneshot::channel();
        self.tx.send((request, reply)).await.ok()?;
        answer.await.ok()
    }
}

/// Most jobs claimed or finished in one statement.
pub const MAX_BATCH: usize = 256;
/// Statements of each kind in flight at once (each holds one connection while it runs).
pub const WRITERS: usize = 2;
/// How long a busy writer waits for more runs before it writes (see [`Batcher::start`]). At
/// 5,000 small jobs a second this cut the CPU of the worker's PostgreSQL backends from about 140
/// to 85 µs per job (BENCHMARKS.md); a lone run is not delayed.
pub const LINGER: Duration = Duration::from_millis(2);
/// Runs whose last items number more than this finish on their own (their final write is big
/// enough to be worth a statement of its own, and must not hold up the small ones).
pub const MAX_ITEMS_BATCHED: usize = 500;

type Claim = Result<Option<Claimed>, sqlx::Error>;

/// The group-committing claim and finish of a worker process on PostgreSQL.
#[derive(Clone, Debug)]
pub struct RunWrites {
    claims: Batcher<String, Claim>,
    finishes: Batcher<Finish, Result<bool, sqlx::Error>>,
    pool: PgPool,
    /// How long a succeeded job's data is kept (`RESULT_TTL`; None: forever).
    result_ttl: Option<Duration>,
}

impl RunWrites {
    /// Start the writer tasks (inside a tokio runtime); finished jobs expire `result_ttl` after
    /// they succeed.
    pub fn start(pool: PgPool, result_ttl: Option<Duration>) -> Self {
        let p = pool.clone();
        let claims = Batcher::start(WRITERS, MAX_BATCH, LINGER, move |ids: Vec<String>| {
            let pool = p.clone();
            async move { claim_batch(&pool, ids).await }
        });
        let p = pool.clone();
        let finishes = Batcher::start(WRITERS, MAX_BATCH, LINGER, move |runs: Vec<Finish>| {
            let pool = p.clone();
            async move { finish_batch(&pool, runs, result_ttl).await }
        });
        RunWrites {
            claims,
            finishes,
            pool,
            result_ttl,
        }
    }

    /// `queued → running` for job `id` with its input (see [`model::claim_with_input`]).
    pub async fn claim(&self, id: &str) -> Claim {
        match self.claims.call(id.to_owned()).await {
            Some(claim) => claim,
            None => Err(sqlx::Error::PoolClosed),
        }
    }

    /// `running → succeeded` with the report and last items (see [`model::finish`]).
    pub async fn finish(&self, run: Finish) -> Result<bool, sqlx::Error> {
        if run.items.len() > MAX_ITEMS_BATCHED {
            return finish_one(&self.pool, &run, self.result_ttl).await;
        }
        match self.finishes.call(run).await {
            Some(finished) => finished,
            None => Err(sqlx::Error::PoolClosed),
        }
    }
}

async fn claim_batch(pool: &PgPool, ids: Vec<String>) -> Vec<Claim> {
    match model::claim_many(pool, &ids).await {
        Ok(claimed) => {
            let mut by_id: HashMap<String, Claimed> =
                claimed.into_iter().map(|c| (c.job.id.clone(), c)).collect();
            // A duplicate id in one batch (two deliveries at once) is claimed once: the first
            // request gets the row, the second finds it gone, as if it had come later.
            ids.iter().map(|id| Ok(by_id.remove(id))).collect()
        }
        Err(e) if ids.len() == 1 => vec![Err(e)],
        Err(e) => {
            tracing::warn!(jobs = ids.len(), error = %e, "batched claim failed; claiming one by one");
            let mut each = Vec::with_capacity(ids.len());
            for id in &ids {
                each.push(
                    model::claim_many(pool, std::slice::from_ref(id))
                        .await
                        .map(|mut c| c.pop()),
                );
            }
            each
        }
    }
}

async fn finish_batch(
    pool: &PgPool,
    runs: Vec<Finish>,
    result_ttl: Option<Duration>,
) -> Vec<Result<bool, sqlx::Error>> {
    match model::finish_many(pool, &runs, result_ttl).await {
        Ok(finished) => finished.into_iter().map(Ok).collect(),
        Err(e) if runs.len() == 1 => vec![Err(e)],
        Err(e) => {
            tracing::warn!(jobs = runs.len(), error = %e, "batched finish failed; finishing one by one");
            let mut each = Vec::with_capacity(runs.len());
            for run in &runs {
                each.push(finish_one(pool, run, result_ttl).await);
            }
            each
        }
    }
}

async fn finish_one(
    pool: &PgPool,
    run: &Finish,
    result_ttl: Option<Duration>,
) -> Result<bool, sqlx::Error> {
    model::finish_many(pool, std::slice::from_ref(run), result_ttl)
        .await
        .map(|f| f[0])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn concurrent_requests_share_writes_and_each_gets_its_own_answer() {
        let writes = Arc::new(AtomicUsize::new(0));
        let counted = writes.clone();
        let batcher = Batcher::start(1, 64, Duration::ZERO, move |xs: Vec<u32>| {
            let counted = counted.clone();
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
                // Long enough for the other requests to arrive and wait for the next write.
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                xs.into_iter().map(|x| x * 2).collect::<Vec<u32>>()
            }
        });
        let calls: Vec<_> = (0..100u32)
            .map(|i| {
                let b = batcher.clone();
                tokio::spawn(async move { (i, b.call(i).await) })
            })
            .collect();
        for call in calls {
            let (i, answer) = call.await.unwrap();
            assert_eq!(answer, Some(i * 2));
        }
        let n = writes.load(Ordering::SeqCst);
        assert!(
            (2..=10).contains(&n),
            "100 concurrent requests took {n} writes"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_request_carried_over_a_weight_limit_is_written_though_nothing_else_arrives() {
        // Two writers, batches of at most 10 by weight: 16 requests of weight 2 arrive at once,
        // so some are carried to a writer's next batch while the other writer waits on an
        // inbox that stays empty. Every request must still be answered.
        let batcher = Batcher::start_weighted(
            2,
            64,
            Duration::ZERO,
            (10, |_: &u32| 2),
            |xs: Vec<u32>| async move {
                tokio::time::sleep(Duration::from_millis(5)).await;
                xs
            },
        );
        let calls: Vec<_> = (0..16u32)
            .map(|i| {
                let b = batcher.clone();
                tokio::spawn(async move { b.call(i).await })
            })
            .collect();
        for (i, call) in calls.into_iter().enumerate() {
            let answer = tokio::time::timeout(Duration::from_secs(5), call)
                .await
                .unwrap_or_else(|_| panic!("request {i} was never written"))
                .unwrap();
            assert_eq!(answer, Some(i as u32));
        }
    }

    #[tokio::test]
    async fn a_busy_writer_waits_for_stragglers_and_writes_them_together() {
        let sizes = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = sizes.clone();
        let batcher = Batcher::start(1, 64, Duration::from_millis(200), move |xs: Vec<u32>| {
            seen.lock().unwrap().push(xs.len());
            async move { xs }
        });
        // A lone request is written at once, without waiting.
        let started = std::time::Instant::now();
        assert_eq!(batcher.call(1).await, Some(1));
        assert!(started.elapsed() < Duration::from_millis(150));
        // Two at once make the writer busy...
        let (a, b) = tokio::join!(batcher.call(2), batcher.call(3));
        assert_eq!((a, b), (Some(2), Some(3)));
        // ...so requests arriving 10 ms apart now share one write.
        let calls: Vec<_> = (0..5u32)
            .map(|i| {
                let b = batcher.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(10 * u64::from(i))).await;
                    b.call(i).await
                })
            })
            .collect();
        for (i, call) in calls.into_iter().enumerate() {
            assert_eq!(call.await.unwrap(), Some(i as u32));
        }
        let sizes = sizes.lock().unwrap().clone();
        assert_eq!(sizes.iter().sum::<usize>(), 8, "{sizes:?}");
        assert_eq!(sizes[0], 1, "the lone request was written alone: {sizes:?}");
        assert_eq!(
            *sizes.last().unwrap(),
            5,
            "stragglers were written one by one: {sizes:?}"
        );
    }

    #[tokio::test]
    async fn a_batch_stops_at_its_weight_limit_and_a_heavier_request_is_written_alone() {
        let batches = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = batches.clone();
        let weight: fn(&u32) -> usize = |x| *x as usize;
        let batcher =
            Batcher::start_weighted(1, 64, Duration::ZERO, (10, weight), move |xs: Vec<u32>| {
                let seen = seen.clone();
                async move {
                    seen.lock().unwrap().push(xs.clone());
                    // Long enough for every request to be waiting before the next batch.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    xs
                }
            });
        let first = {
            let b = batcher.clone();
            tokio::spawn(async move { b.call(1).await })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        let calls: Vec<_> = [4u32, 4, 4, 30, 2]
            .into_iter()
            .map(|x| {
                let b = batcher.clone();
                tokio::spawn(async move { (x, b.call(x).await) })
            })
            .collect();
        assert_eq!(first.await.unwrap(), Some(1));
        for call in calls {
            let (x, answer) = call.await.unwrap();
            assert_eq!(answer, Some(x));
        }
        let batches = batches.lock().unwrap().clone();
        let mut all: Vec<u32> = batches.iter().flatten().copied().collect();
        all.sort_unstable();
        assert_eq!(all, vec![1, 2, 4, 4, 4, 30], "{batches:?}");
        for batch in &batches {
            let sum: u32 = batch.iter().sum();
            assert!(
                sum <= 10 || batch.len() == 1,
                "a batch over the limit with more than one request: {batches:?}"
            );
        }
        assert!(
            batches.contains(&vec![30]),
            "the heavy request was not written alone: {batches:?}"
        );
        assert!(
            batches.contains(&vec![4, 4]),
            "requests that fit were not written together: {batches:?}"
        );
    }
}
