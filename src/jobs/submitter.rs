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
//! ([`crate::jobs::model::create_many`]) and then their entries are pushed in one round trip
//! per queue, each handler answered after the push; as with single submissions, a failed push
//! leaves the committed rows to the reconciler. PostgreSQL is not limited to one writer, so
//! several batches are in flight at once, and a busy writer lingers briefly for more
//! (the topology decides both: [`crate::jobs::store`]).

use super::batch::Batcher;
use super::model::NewJob;
use super::store::{StoreError, Topology};

/// Most jobs written in one transaction.
pub const MAX_BATCH_JOBS: usize = 128;
/// Most input bytes written in one transaction (a single larger job is written alone).
pub const MAX_BATCH_BYTES: usize = 4 << 20;

/// The handle the store submits through; cheap to clone.
#[derive(Clone, Debug)]
pub struct Submitter {
    writers: Batcher<NewJob, Result<Submitted, StoreError>>,
}

/// What became of a submission.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Submitted {
    /// Written and queued.
    Created,
    /// Not written: another job holds its idempotency key (committed before this one, or
    /// earlier in the same batch).
    KeyTaken,
}

impl Submitter {
    /// Start the writer tasks of `topology` (must be called inside a tokio runtime). They end
    /// when the last handle is dropped.
    pub(crate) fn start(topology: Topology) -> Submitter {
        let (writers, linger) = topology.writers_and_linger();
        let input_bytes: fn(&NewJob) -> usize = |job| job.input.held();
        let writers = Batcher::start_weighted(
            writers,
            MAX_BATCH_JOBS,
            linger,
            (MAX_BATCH_BYTES, input_bytes),
            move |jobs: Vec<NewJob>| {
                let topology = topology.clone();
                async move { write_batch(&topology, &jobs).await }
            },
        );
        Submitter { writers }
    }

    /// Write the job row, its input and its queue entry; returns once they are committed (and,
    /// with Redis, once the push has been answered or has failed).
    pub async fn submit(&self, job: NewJob) -> Result<Submitted, StoreError> {
        self.writers
            .call(job)
            .await
            .unwrap_or(Err(StoreError::Db(sqlx::Error::PoolClosed)))
    }
}

/// Write `batch` in one transaction, or (if that fails) each job in its own; then push the
/// queue entries (Redis) and wake the local workers. One result per job, in order. A job
/// whose key an earlier job of the batch claims is not sent to the database at all (two claims
/// of one key in one PostgreSQL statement would be an error, not a conflict).
async fn write_batch(topology: &Topology, batch: &[NewJob]) -> Vec<Result<Submitted, StoreError>> {
    let repeated = repeated_keys(batch);
    let jobs: Vec<&NewJob> = batch
        .iter()
        .zip(&repeated)
        .filter(|(_, r)| !**r)
        .map(|(j, _)| j)
        .collect();
    let results: Vec<Result<bool, StoreError>> = match topology.write_new(&jobs).await {
        Ok(fresh) => fresh.into_iter().map(Ok).collect(),
        Err(e) if jobs.len() == 1 => vec![Err(e)],
        Err(e) => {
            tracing::warn!(jobs = jobs.len(), error = %e, "batched submission failed; writing its jobs one by one");
            let mut each = Vec::with_capacity(jobs.len());
            for job in &jobs {
                let written = topology.write_new(std::slice::from_ref(job)).await;
                each.push(written.map(|fresh| fresh[0]));
            }
            each
        }
    };
    let written: Vec<&NewJob> = jobs
        .iter()
        .zip(&results)
        .filter(|(_, r)| matches!(r, Ok(true)))
        .map(|(j, _)| *j)
        .collect();
    topology.announce_new(&written).await;
    let mut results = results.into_iter();
    repeated
        .iter()
        .map(|&again| match again {
            true => Ok(Submitted::KeyTaken),
            false => results
                .next()
                .expect("one result per job written")
                .map(|fresh| {
                    if fresh {
                        Submitted::Created
                    } else {
                        Submitted::KeyTaken
                    }
                }),
        })
        .collect()
}

/// Which jobs of `batch` carry a key an earlier job of the batch carries.
fn repeated_keys(batch: &[NewJob]) -> Vec<bool> {
    let mut seen = std::collections::HashSet::new();
    batch
        .iter()
        .map(|j| {
            j.idempotency
                .as_ref()
                .is_some_and(|k| !seen.insert(k.scope_key.as_str()))
        })
        .collect()
}
