//! A budget of bytes in memory, shared by the tasks of one process: request bodies in the web
//! process ([`crate::web::upload::Budget`] adds a short wait and a refusal) and the analyses of a
//! worker ([`crate::deps::Deps::analysis_memory`]).

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Bytes that may be held at once; counted in KiB so a budget of gigabytes fits a semaphore.
#[derive(Debug)]
pub struct ByteBudget {
    permits: Arc<Semaphore>,
    total_kib: u32,
}

fn kib(bytes: usize) -> u32 {
    u32::try_from(bytes.div_ceil(1024)).unwrap_or(u32::MAX)
}

impl ByteBudget {
    pub fn new(bytes: usize) -> ByteBudget {
        let total_kib = kib(bytes).max(1);
        ByteBudget {
            permits: Arc::new(Semaphore::new(total_kib as usize)),
            total_kib,
        }
    }

    /// Wait until `bytes` can be held, and hold them while the permit lives. More than the
    /// whole budget holds all of it (waiting for everything else to end), never waits forever.
    pub async fn hold(&self, bytes: usize) -> OwnedSemaphorePermit {
        let want = kib(bytes).clamp(1, self.total_kib);
        self.permits
            .clone()
            .acquire_many_owned(want)
            .await
            .expect("the budget's semaphore is never closed")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn more_than_the_whole_budget_waits_for_all_of_it_not_forever() {
        let budget = ByteBudget::new(4 << 10);
        let first = budget.hold(3 << 10).await;
        let waiting =
            tokio::time::timeout(std::time::Duration::from_millis(50), budget.hold(64 << 20)).await;
        assert!(
            waiting.is_err(),
            "held while another holds part of the budget"
        );
        drop(first);
        let all = tokio::time::timeout(std::time::Duration::from_secs(1), budget.hold(64 << 20))
            .await
            .expect("an oversized request gets the whole budget once it is free");
        let none_left =
            tokio::time::timeout(std::time::Duration::from_millis(50), budget.hold(1)).await;
        assert!(none_left.is_err());
        drop(all);
    }
}
