//! What every part of a process shares: the job store, this process's running jobs, timing and
//! metrics. The web handlers, the pages, the admin dashboard and the worker all take a [`Deps`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::config::Timing;
use crate::jobs::store::JobStore;
use crate::jobs::worker::CancelFlags;

/// [`Deps::analysis_memory`] unless configured: half of the default `MEMORY_BUDGET_MB`.
const DEFAULT_ANALYSIS_MEMORY: usize = 128 << 20;

/// The services of one process; cheap to clone.
#[derive(Clone, Debug)]
pub struct Deps {
    /// Every change of a job's state, with its queue side effect.
    pub store: JobStore,
    /// Cancel flags of the jobs running in this process.
    pub cancels: CancelFlags,
    pub timing: Timing,
    /// Set when the process stops: interrupted jobs are handed back to the queue.
    pub handing_back: Arc<AtomicBool>,
    /// This process's Prometheus metrics.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Analyses of this queue's worker that may run at once (set per queue by
    /// [`crate::jobs::worker::register_jobs`]; None: no limit beyond the worker's own
    /// concurrency).
    pub analysis_slots: Option<Arc<tokio::sync::Semaphore>>,
    /// Bytes the worker's analyses may hold at once: each run's chunks in flight with their
    /// scores and item rows, and the inputs it holds whole (a batch of documents, inputs of up
    /// to a part). A run waits for its share before it reads its input, so however many jobs
    /// the worker runs at once (`--concurrency`, queues), its analyses stay within this.
    pub analysis_memory: Arc<crate::budget::ByteBudget>,
}

impl Deps {
    pub fn new(store: JobStore, timing: Timing) -> Self {
        Deps {
            store,
            cancels: CancelFlags::default(),
            timing,
            handing_back: Arc::new(AtomicBool::new(false)),
            metrics: Arc::new(crate::metrics::Metrics::new()),
            analysis_slots: None,
            analysis_memory: Arc::new(crate::budget::ByteBudget::new(DEFAULT_ANALYSIS_MEMORY)),
        }
    }

    /// Give the worker's analyses `bytes` of memory.
    pub fn with_analysis_memory(mut self, bytes: usize) -> Self {
        self.analysis_memory = Arc::new(crate::budget::ByteBudget::new(bytes));
        self
    }

    /// The database, for reads.
    pub fn db(&self) -> &crate::db::Db {
        self.store.db()
    }

    /// Shutdown ran out of patience: stop the running jobs at their next chunk and hand them
    /// back to the queue, so another worker (or the next start) runs them again.
    pub fn hand_back_running_jobs(&self) {
        self.handing_back.store(true, Ordering::SeqCst);
        self.cancels.cancel_all();
    }
}
