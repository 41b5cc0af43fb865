//! A fair share of the workers for every client, and each client's `max_running`.
//!
//! The queues apalis reads are first in, first out: a client that submits 2,000 jobs would put
//! every other client's next job behind all of them. So jobs are grouped by *owner* (an API key,
//! else a browser visitor, else one group for everything anonymous, [`Share`]), and each topology
//! orders its queue by owner:
//!
//! - **Redis** (production): a new entry does not go onto apalis's active list but onto its
//!   owner's *waiting* list. A *feed* ([`FEED_LUA`], inside every script below, so each step is
//!   atomic) moves entries from the waiting lists onto the active list while that list is shorter
//!   than the queue's depth ([`depth`]: 512 on `quick`, 1 on `bulk`), each time from the owner
//!   with the fewest *dispatched* jobs (moved to the active list and not yet ended: waiting
//!   there, fetched or running), skipping owners at their `max_running`. An owner with nothing
//!   running is therefore next, whatever another owner's backlog, and an owner never has more
//!   than `max_running` jobs dispatched, so never more running, across all workers. Every
//!   delivery's end releases its job ([`RedisQueue::release`], batched) and feeds; so do
//!   submissions, claims on `bulk` (the list is one entry deep: a second free slot must not wait
//!   for the next release) and a periodic tick. The dispatched sets hold job ids (a job released
//!   twice is released once); the reconciler removes ids of jobs that are no longer open
//!   ([`RedisQueue::dispatched`], [`RedisQueue::release`]), should a release be lost.
//!   Entries pushed again by the reconciler or for a retry skip the waiting lists: the job keeps
//!   the slot it had.
//! - **Embedded** (SQLite): apalis-sqlite fetches by priority first, so a new entry's priority
//!   is lower the more open jobs its owner has ([`priority`]): another owner's first job is
//!   fetched before the rest of a backlog. A key with `max_running` has its jobs beyond the
//!   limit written *held* (a row without a queue entry); each delivery's end of that owner's jobs
//!   releases held ones into the queue, counted in the one writer's transaction.
//!
//! Costs (measured in BENCHMARKS.md): on Redis one more list operation per submission and one
//! script per batch of ended deliveries; on SQLite one bounded count per owner per submission
//! batch.

use std::collections::HashMap;
use std::time::Duration;

use sqlx::SqliteConnection;

use super::model::NewJob;
use super::queue::{QueueName, RedisQueue};

/// Whose job it is, as far as sharing the workers goes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Owner {
    /// Submitted with this API key (its id).
    Key(String),
    /// Submitted by this browser visitor, without a key.
    Visitor(String),
    /// Neither: every such job is in one group.
    Anonymous,
}

impl Owner {
    /// The owner of a job submitted with API key `key_id`, or by browser `visitor`, or neither.
    pub fn of(key_id: Option<&str>, visitor: Option<&str>) -> Owner {
        match (key_id, visitor) {
            (Some(key), _) => Owner::Key(key.to_owned()),
            (None, Some(visitor)) => Owner::Visitor(visitor.to_owned()),
            (None, None) => Owner::Anonymous,
        }
    }

    /// Its name in Redis keys: `key:<id>`, `visitor:<id>` or `anonymous`.
    pub fn name(&self) -> String {
        match self {
            Owner::Key(id) => format!("key:{id}"),
            Owner::Visitor(id) => format!("visitor:{id}"),
            Owner::Anonymous => "anonymous".to_owned(),
        }
    }
}

/// A job's owner and the owner's limit on running jobs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Share {
    pub owner: Owner,
    /// Most jobs of this owner running at once (None: no limit of its own).
    pub max_running: Option<u32>,
}

/// How many entries of `queue` the feed keeps on apalis's active list. Every entry there is
/// ahead of the next owner's first job, so the list is short; but it refills only when jobs
/// end, so it must hold about what a worker fetches at once (`WORKER_IN_FLIGHT`, 512) or a
/// draining worker finds it empty and idles (128 cost 15 % of the drain rate, BENCHMARKS.md).
/// 512 quick jobs take a worker about a tenth of a second. One bulk entry, because a bulk job
/// takes seconds and a second one waiting would double another owner's wait.
pub fn depth(queue: QueueName) -> usize {
    match queue {
        QueueName::Quick => 512,
        QueueName::Bulk => 1,
    }
}

/// How often each worker feeds its queues even when nothing ended: the safety net under the
/// feeds that submissions, claims and releases trigger.
pub const FEED_EVERY: Duration = Duration::from_millis(250);

/// The priority of an embedded queue entry whose owner has `open` jobs queued or running
/// besides it: apalis-sqlite fetches higher priorities first, in submission order within one.
/// Counts are bounded ([`OPEN_COUNTED`]): past that, an owner's jobs are all equally late.
pub fn priority(open: i64) -> usize {
    (OPEN_COUNTED - open.clamp(0, OPEN_COUNTED)) as usize
}

/// Most open jobs of one owner counted for [`priority`] (the count is an index range scan).
pub const OPEN_COUNTED: i64 = 256;

/// The priority of an entry that keeps its place: a retry, a job handed back, one re-enqueued by
/// the reconciler. Its job had its turn already.
pub const AHEAD: usize = OPEN_COUNTED as usize;

/// The embedded queue priorities of new jobs written in the caller's transaction, in order: each
/// job's owner's open jobs before it (its earlier jobs in `jobs` included) set its [`priority`].
pub(crate) async fn priorities(
    conn: &mut SqliteConnection,
    jobs: &[&NewJob],
) -> Result<Vec<usize>, sqlx::Error> {
    let owners: Vec<Owner> = jobs.iter().map(|j| j.share().owner).collect();
    let mut in_batch: HashMap<&Owner, i64> = HashMap::new();
    for owner in &owners {
        *in_batch.entry(owner).or_default() += 1;
    }
    let mut next: HashMap<&Owner, i64> = HashMap::new();
    let mut out = Vec::with_capacity(jobs.len());
    for owner in &owners {
        let rank = match next.get_mut(owner) {
            Some(rank) => {
                *rank += 1;
                *rank
            }
            None => {
                // The batch's rows are written already: those of this owner are not "before".
                let batch = in_batch[owner];
                let open = open_jobs(conn, owner, OPEN_COUNTED + batch).await?;
                let first = (open - batch).max(0);
                next.insert(owner, first);
                first
            }
        };
        out.push(priority(rank));
    }
    Ok(out)
}

/// Embedded: which of the new jobs `jobs` (written in the caller's transaction) are held
/// because their key has `max_running` jobs dispatched already; those are marked held.
pub(crate) async fn hold_beyond_limits(
    conn: &mut SqliteConnection,
    jobs: &[&NewJob],
) -> Result<Vec<bool>, sqlx::Error> {
    let mut dispatched: HashMap<String, i64> = HashMap::new();
    let mut held = Vec::with_capacity(jobs.len());
    for job in jobs {
        let share = job.share();
        let (Owner::Key(key), Some(limit)) = (&share.owner, share.max_running) else {
            held.push(false);
            continue;
        };
        let limit = i64::from(limit);
        let n = match dispatched.get_mut(key) {
            Some(n) => n,
            None => {
                // The batch's rows are written already, none held yet: count only older ones.
                let batch = jobs
                    .iter()
                    .filter(|j| j.share().owner == share.owner)
                    .count() as i64;
                let open = dispatched_jobs(conn, key, limit + batch).await?;
                dispatched
                    .entry(key.clone())
                    .or_insert((open - batch).max(0))
            }
        };
        if *n < limit {
            *n += 1;
            held.push(false);
        } else {
            sqlx::query("UPDATE sentiq_jobs SET held = 1 WHERE id = ?")
                .bind(job.id.to_string())
                .execute(&mut *conn)
                .await?;
            held.push(true);
        }
    }
    Ok(held)
}

/// Embedded: release held jobs of key `key` while it has fewer than `limit` jobs dispatched
/// (oldest first), in the caller's transaction. Returns the released jobs, to be enqueued.
pub(crate) async fn release_held(
    conn: &mut SqliteConnection,
    key: &str,
    limit: i64,
) -> Result<Vec<(String, QueueName)>, sqlx::Error> {
    let room = limit - dispatched_jobs(conn, key, limit).await?;
    if room <= 0 {
        return Ok(Vec::new());
    }
    sqlx::query_as(
        "UPDATE sentiq_jobs SET held = 0 WHERE id IN (SELECT id FROM sentiq_jobs \
         WHERE api_key_id = ? AND held = 1 AND finished_at IS NULL \
         ORDER BY created_at, id LIMIT ?) RETURNING id, queue",
    )
    .bind(key)
    .bind(room)
    .fetch_all(&mut *conn)
    .await
}

/// Embedded: the keys that have held jobs, with their `max_running` (None: the limit was
/// lifted, every held job may go).
pub(crate) async fn keys_holding(
    pool: &sqlx::SqlitePool,
) -> Result<Vec<(String, Option<i64>)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT h.api_key_id, k.max_running FROM (SELECT DISTINCT api_key_id FROM sentiq_jobs \
         WHERE held = 1 AND finished_at IS NULL) h LEFT JOIN api_keys k ON k.id = h.api_key_id",
    )
    .fetch_all(pool)
    .await
}

/// Embedded: the key and `max_running` of job `id`'s owner, when it has a limit.
pub(crate) async fn limit_of_job(
    pool: &sqlx::SqlitePool,
    id: &str,
) -> Result<Option<(String, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT j.api_key_id, k.max_running FROM sentiq_jobs j JOIN api_keys k \
         ON k.id = j.api_key_id WHERE j.id = ? AND k.max_running IS NOT NULL",
    )
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// Key `key`'s dispatched (queued with an entry, or running) jobs, counted up to `limit`.
async fn dispatched_jobs(
    conn: &mut SqliteConnection,
    key: &str,
    limit: i64,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM (SELECT 1 FROM sentiq_jobs \
         WHERE finished_at IS NULL AND api_key_id = ? AND held = 0 LIMIT ?)",
    )
    .bind(key)
    .bind(limit)
    .fetch_one(&mut *conn)
    .await
}

/// `owner`'s queued and running jobs, counted up to `limit` (index `jobs_open_by_owner`).
async fn open_jobs(
    conn: &mut SqliteConnection,
    owner: &Owner,
    limit: i64,
) -> Result<i64, sqlx::Error> {
    const BY_KEY: &str = "SELECT COUNT(*) FROM (SELECT 1 FROM sentiq_jobs \
         WHERE finished_at IS NULL AND api_key_id = ? LIMIT ?)";
    const BY_VISITOR: &str = "SELECT COUNT(*) FROM (SELECT 1 FROM sentiq_jobs \
         WHERE finished_at IS NULL AND api_key_id IS NULL AND held = 0 AND visitor = ? LIMIT ?)";
    const ANONYMOUS: &str = "SELECT COUNT(*) FROM (SELECT 1 FROM sentiq_jobs \
         WHERE finished_at IS NULL AND api_key_id IS NULL AND held = 0 AND visitor IS NULL LIMIT ?)";
    let query = match owner {
        Owner::Key(id) => sqlx::query_scalar(BY_KEY).bind(id.as_str()),
        Owner::Visitor(id) => sqlx::query_scalar(BY_VISITOR).bind(id.as_str()),
        Owner::Anonymous => sqlx::query_scalar(ANONYMOUS),
    };
    query.bind(limit).fetch_one(&mut *conn).await
}

/// The feed, defined in every script that uses it. `p` is the queue's fair-share key prefix;
/// owners are scored in `p:owners` by their number of dispatched jobs.
const FEED_LUA: &str = r#"
local function feed(p, active, depth)
    local room = depth - redis.call('llen', active)
    if room <= 0 then return 0 end
    local raw = redis.call('zrange', p .. ':owners', 0, -1, 'WITHSCORES')
    if #raw == 0 then return 0 end
    local owners = {}
    for i = 1, #raw, 2 do
        local limit = tonumber(redis.call('hget', p .. ':limits', raw[i]) or '')
        owners[#owners + 1] = { name = raw[i], n = tonumber(raw[i + 1]), limit = limit, left = true }
    end
    local moved = 0
    while room > 0 do
        local best = nil
        for _, o in ipairs(owners) do
            if o.left and ((not o.limit) or o.n < o.limit) and ((not best) or o.n < best.n) then
                best = o
            end
        end
        if not best then break end
        local task = redis.call('lpop', p .. ':waiting:' .. best.name)
        if task then
            local job = string.match(task, '^(.*):%d+$') or task
            redis.call('rpush', active, task)
            if redis.call('sadd', p .. ':dispatched:' .. best.name, job) == 1 then
                best.n = best.n + 1
            end
            redis.call('hset', p .. ':owner_of', job, best.name)
            moved = moved + 1
            room = room - 1
        end
        if redis.call('llen', p .. ':waiting:' .. best.name) == 0 then
            best.left = false
            redis.call('zrem', p .. ':owners', best.name)
        end
    end
    for _, o in ipairs(owners) do
        if o.left then redis.call('zadd', p .. ':owners', 'XX', o.n, o.name) end
    end
    return moved
end

local function wake(signal, channel, moved)
    if moved > 0 then
        redis.call('del', signal)
        redis.call('lpush', signal, 1)
        redis.call('publish', channel, moved)
    end
end
"#;

/// New entries of one queue: written as apalis reads them (data, metadata `Pending`), each put
/// on its owner's waiting list, then fed.
const PUSH_LUA: &str = r#"
-- KEYS: data hash, active list, signal list
-- ARGV: meta key prefix, wake channel, fair prefix, depth,
--       then per entry: task id, payload, owner, max_running ('' = none)
local p = ARGV[3]
for i = 5, #ARGV, 4 do
    local id, owner, limit = ARGV[i], ARGV[i + 2], ARGV[i + 3]
    local meta = ARGV[1] .. ':' .. id
    redis.call('hset', KEYS[1], id, ARGV[i + 1])
    redis.call('del', meta)
    redis.call('hset', meta, 'attempts', 0, 'max_attempts', 1, 'status', 'Pending', 'idempotency_key', '')
    if limit == '' then
        redis.call('hdel', p .. ':limits', owner)
    else
        redis.call('hset', p .. ':limits', owner, limit)
    end
    redis.call('rpush', p .. ':waiting:' .. owner, id)
    redis.call('zadd', p .. ':owners', 'NX', redis.call('scard', p .. ':dispatched:' .. owner), owner)
end
local moved = feed(p, KEYS[2], tonumber(ARGV[4]))
wake(KEYS[3], ARGV[2], moved)
return moved
"#;

/// Ended jobs give back their slots (unknown ids are ignored), then the queue is fed.
const RELEASE_LUA: &str = r#"
-- KEYS: active list, signal list
-- ARGV: wake channel, fair prefix, depth, then job ids
local p = ARGV[2]
for i = 4, #ARGV do
    local job = ARGV[i]
    local owner = redis.call('hget', p .. ':owner_of', job)
    if owner then
        redis.call('hdel', p .. ':owner_of', job)
        redis.call('srem', p .. ':dispatched:' .. owner, job)
        redis.call('zadd', p .. ':owners', 'XX', redis.call('scard', p .. ':dispatched:' .. owner), owner)
    end
end
local moved = feed(p, KEYS[1], tonumber(ARGV[3]))
wake(KEYS[2], ARGV[1], moved)
return moved
"#;

/// Scripts with the feed defined in them.
pub(super) fn scripts() -> (redis::Script, redis::Script) {
    (
        redis::Script::new(&format!("{FEED_LUA}{PUSH_LUA}")),
        redis::Script::new(&format!("{FEED_LUA}{RELEASE_LUA}")),
    )
}

/// Most job ids one [`RedisQueue::dispatched`] page returns.
pub const DISPATCHED_PAGE: usize = 500;

impl RedisQueue {
    /// The key prefix of `queue`'s fair-share state.
    fn fair_prefix(&self, queue: QueueName) -> String {
        format!("{}:fair", self.queue_name(queue))
    }

    /// Push the first entries of new jobs of `queue` (`(job id, share)`, attempt counter 0)
    /// onto their owners' waiting lists and feed the queue: one round trip, retried once (a
    /// dropped connection fails the first command after it).
    pub async fn push_fair(
        &self,
        queue: QueueName,
        jobs: &[(&str, &Share)],
    ) -> Result<(), redis::RedisError> {
        match self.push_fair_once(queue, jobs).await {
            Ok(()) => Ok(()),
            Err(first) => {
                tracing::debug!(jobs = jobs.len(), error = %first, "push failed; retrying once");
                self.push_fair_once(queue, jobs).await
            }
        }
    }

    async fn push_fair_once(
        &self,
        queue: QueueName,
        jobs: &[(&str, &Share)],
    ) -> Result<(), redis::RedisError> {
        let config = self.config(queue);
        let mut invocation = self.fair_push.prepare_invoke();
        invocation
            .key(config.job_data_hash())
            .key(config.active_jobs_list())
            .key(config.signal_list())
            .arg(config.job_meta_hash())
            .arg(self.wake_channel(queue))
            .arg(self.fair_prefix(queue))
            .arg(depth(queue));
        for (id, share) in jobs {
            invocation
                .arg(Self::task_id(id, 0))
                .arg(serde_json::to_vec(id).expect("a string serialises"))
                .arg(share.owner.name())
                .arg(share.max_running.map(|n| n.to_string()).unwrap_or_default());
        }
        let mut conn = self.connection();
        invocation.invoke_async::<i64>(&mut conn).await?;
        Ok(())
    }

    /// Give back the slots of the jobs `ids` of `queue` (their deliveries ended; ids that hold
    /// none are ignored) and feed the queue, which is all an empty `ids` does.
    pub async fn release(&self, queue: QueueName, ids: &[&str]) -> Result<(), redis::RedisError> {
        let config = self.config(queue);
        let mut invocation = self.fair_release.prepare_invoke();
        invocation
            .key(config.active_jobs_list())
            .key(config.signal_list())
            .arg(self.wake_channel(queue))
            .arg(self.fair_prefix(queue))
            .arg(depth(queue));
        for id in ids {
            invocation.arg(*id);
        }
        let mut conn = self.connection();
        invocation.invoke_async::<i64>(&mut conn).await?;
        Ok(())
    }

    /// A page of the ids of `queue`'s dispatched jobs, from `cursor` (0 to start; the returned
    /// cursor is 0 after the last page), for the reconciler to release those that ended.
    pub async fn dispatched(
        &self,
        queue: QueueName,
        cursor: u64,
    ) -> Result<(u64, Vec<String>), redis::RedisError> {
        let mut conn = self.connection();
        let (next, pairs): (u64, Vec<String>) = redis::cmd("HSCAN")
            .arg(format!("{}:owner_of", self.fair_prefix(queue)))
            .arg(cursor)
            .arg("COUNT")
            .arg(DISPATCHED_PAGE)
            .query_async(&mut conn)
            .await?;
        Ok((next, pairs.into_iter().step_by(2).collect()))
    }

    /// Entries waiting on owners' lists (not yet on apalis's list), for the dashboard.
    pub async fn waiting(&self, queue: QueueName) -> Result<i64, redis::RedisError> {
        let prefix = self.fair_prefix(queue);
        let mut conn = self.connection();
        let owners: Vec<String> = redis::cmd("ZRANGE")
            .arg(format!("{prefix}:owners"))
            .arg(0)
            .arg(-1)
            .query_async(&mut conn)
            .await?;
        if owners.is_empty() {
            return Ok(0);
        }
        let mut pipe = redis::pipe();
        for owner in &owners {
            pipe.llen(format!("{prefix}:waiting:{owner}"));
        }
        let lengths: Vec<i64> = pipe.query_async(&mut conn).await?;
        Ok(lengths.into_iter().sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_owner_is_its_key_else_its_visitor_else_anonymous() {
        assert_eq!(Owner::of(Some("k1"), Some("v1")).name(), "key:k1");
        assert_eq!(Owner::of(None, Some("v1")).name(), "visitor:v1");
        assert_eq!(Owner::of(None, None).name(), "anonymous");
    }

    #[test]
    fn an_owner_with_fewer_open_jobs_gets_a_higher_priority_down_to_a_floor() {
        assert!(priority(0) > priority(1));
        assert!(priority(1) > priority(255));
        assert_eq!(priority(OPEN_COUNTED), 0);
        assert_eq!(priority(10 * OPEN_COUNTED), 0);
        assert_eq!(priority(0), AHEAD);
    }

    #[test]
    fn the_bulk_list_is_one_entry_deep_and_the_quick_list_what_a_worker_fetches_at_once() {
        assert_eq!(depth(QueueName::Bulk), 1);
        let in_flight: usize = crate::config::WORKER_IN_FLIGHT
            .default
            .and_then(|d| d.parse().ok())
            .unwrap();
        assert_eq!(depth(QueueName::Quick), in_flight);
    }
}
