//! Idempotency keys: a retried submission gets the first answer again instead of a second job.
//!
//! A key is claimed in the same transaction as the job it names (see the store's submit), so
//! whichever of two concurrent requests commits first owns it, in every process and on both
//! databases: the other's claim finds the committed row (PostgreSQL makes it wait for the
//! first transaction's end) and writes nothing. That request then reads the key's record and is
//! answered from it: the same job if its request was the same (same fingerprint), a refusal if
//! it was another one. A key past its expiry is claimed anew, in the same statement.

use sqlx::{PgConnection, SqliteConnection};

use crate::db::Db;
use crate::on_db;
use crate::timestamp::Timestamp;

/// A key a new job claims.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyClaim {
    /// The scope and the client's key (`api:<key>`, `form:<token>:<fingerprint>`): keys of
    /// different scopes never meet.
    pub scope_key: String,
    /// SHA-256 (hex) of the request: tells a retry from another request under the same key.
    pub fingerprint: String,
    /// Until when a retry gets the first answer.
    pub expires_at: Timestamp,
}

/// What a claimed key records: the job its first request made.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct KeyRecord {
    pub fingerprint: String,
    pub job_id: String,
    pub expires_at: Timestamp,
}

/// Claim `claim` for job `job_id` unless a live claim holds it; taken over when expired. One
/// text for both dialects (`ON CONFLICT ... WHERE` and `RETURNING` mean the same in both).
const CLAIM: &str = "INSERT INTO idempotency_keys (scope_key, fingerprint, job_id, created_at, \
     expires_at) VALUES ($1, $2, $3, $4, $5) \
     ON CONFLICT (scope_key) DO UPDATE SET fingerprint = excluded.fingerprint, \
     job_id = excluded.job_id, created_at = excluded.created_at, expires_at = excluded.expires_at \
     WHERE idempotency_keys.expires_at <= excluded.created_at \
     RETURNING job_id";

/// Claim the keys of `jobs` (`(job id, claim)`; jobs without a key pass) inside the caller's
/// SQLite transaction. One flag per job: true when it may be written.
pub async fn claim_in_sqlite(
    conn: &mut SqliteConnection,
    jobs: &[(String, Option<&KeyClaim>)],
) -> Result<Vec<bool>, sqlx::Error> {
    let now = Timestamp::now().to_string();
    let mut fresh = Vec::with_capacity(jobs.len());
    for (id, claim) in jobs {
        fresh.push(match claim {
            None => true,
            Some(c) => claim_query(c, id, &now)
                .fetch_optional(&mut *conn)
                .await?
                .is_some(),
        });
    }
    Ok(fresh)
}

/// As [`claim_in_sqlite`], inside a PostgreSQL transaction. Keys are claimed in key order, so
/// two transactions claiming the same keys cannot wait for each other in a circle.
pub async fn claim_in_postgres(
    conn: &mut PgConnection,
    jobs: &[(String, Option<&KeyClaim>)],
) -> Result<Vec<bool>, sqlx::Error> {
    let now = Timestamp::now().to_string();
    let mut order: Vec<usize> = (0..jobs.len()).collect();
    order.sort_by(|&a, &b| {
        let key = |i: usize| jobs[i].1.map(|c| c.scope_key.as_str());
        key(a).cmp(&key(b))
    });
    let mut fresh = vec![true; jobs.len()];
    for i in order {
        let (id, Some(claim)) = &jobs[i] else {
            continue;
        };
        fresh[i] = claim_query(claim, id, &now)
            .fetch_optional(&mut *conn)
            .await?
            .is_some();
    }
    Ok(fresh)
}

fn claim_query<'q, DB: sqlx::Database>(
    claim: &'q KeyClaim,
    job_id: &'q str,
    now: &'q str,
) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments>
where
    &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    sqlx::query(CLAIM)
        .bind(claim.scope_key.as_str())
        .bind(claim.fingerprint.as_str())
        .bind(job_id)
        .bind(now)
        .bind(claim.expires_at.to_string())
}

/// The live record of `scope_key`, if any (an expired one is as good as none).
pub async fn record(db: &Db, scope_key: &str) -> Result<Option<KeyRecord>, sqlx::Error> {
    let now = Timestamp::now().to_string();
    on_db!(db, |pool| {
        sqlx::query_as(
            "SELECT fingerprint, job_id, expires_at FROM idempotency_keys \
             WHERE scope_key = $1 AND expires_at > $2",
        )
        .bind(scope_key)
        .bind(&now)
        .fetch_optional(pool)
        .await
    })
}

/// Delete up to `limit` expired keys. Returns how many.
pub async fn prune(db: &Db, limit: i64) -> Result<u64, sqlx::Error> {
    let now = Timestamp::now().to_string();
    let _write = db.write_permit().await;
    on_db!(db, |pool| {
        sqlx::query(
            "DELETE FROM idempotency_keys WHERE scope_key IN (SELECT scope_key FROM \
             idempotency_keys WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2)",
        )
        .bind(&now)
        .bind(limit)
        .execute(pool)
        .await
        .map(|r| r.rows_affected())
    })
}
