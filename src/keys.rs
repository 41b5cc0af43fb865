//! API keys: how a client of the JSON API is known (`Authorization: Bearer sq_…`).
//!
//! A key is `sq_` followed by the base64url (no padding) of 32 random bytes from the operating
//! system: 43 characters, 256 bits that cannot be guessed. It is shown once, when it is made,
//! and never stored: the `api_keys` row keeps its SHA-256 (a fast hash is enough for a secret of
//! 256 random bits; a slow one protects guessable passwords, which these are not), so a dump of
//! the database gives nothing that authenticates. A request's key is found by its public
//! `prefix` (the first [`LOOKUP_LEN`] characters after `sq_`, shown in lists so an operator can
//! tell keys apart) and its hash is then compared in constant time.
//!
//! Keys are revoked, never deleted: the jobs that name a key keep their owner, and a revoked
//! key is refused from the next request on, on every web process (the row is read, or on
//! PostgreSQL a process's cache of it is emptied as the revocation commits: `web::caller::KeyCache`).
//! Each key may carry its own limits ([`Limits`]): submissions per minute
//! (`web::rate_limit`) and jobs running at once.
//!
//! The SQL of `api_keys`, and the usage figures read from `sentiq_jobs` (an aggregate grouped
//! by `api_key_id`, not counters written on every submission), live here; the command line
//! (`sentiq keys`), the dashboard (`/admin/keys`) and the web's authentication call it.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use sqlx::FromRow;
use subtle::ConstantTimeEq;

use crate::config::Secret;
use crate::db::Db;
use crate::jobs::model::Status;
use crate::on_db;
use crate::timestamp::{Timestamp, now};

/// What every key starts with, so a leaked one is recognisable (by a person or a secret scanner).
pub const KEY_PREFIX: &str = "sq_";
/// Random bytes of a key.
const RANDOM_BYTES: usize = 32;
/// Characters after `sq_`: base64url of 32 bytes, without padding.
pub const ENCODED_LEN: usize = 43;
/// Characters after `sq_` stored in clear as the key's look-up prefix (48 of its 256 bits).
pub const LOOKUP_LEN: usize = 8;
/// Longest key name.
pub const MAX_NAME_LEN: usize = 64;
/// Draws of a new key whose look-up prefix another key holds already (about one in 2^48 per
/// existing key) before giving up.
const DRAWS: usize = 5;

/// A key's own limits; None: the server's default (`SUBMIT_RATE_PER_MINUTE`; no cap on
/// running jobs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    /// Submissions per minute across all web processes (0: no limit).
    pub rate_per_minute: Option<u32>,
    /// Jobs of this key running at once across all workers (at least 1).
    pub max_running: Option<u32>,
}

impl Limits {
    /// "10 submissions/min, 2 running at most": the limits in words.
    pub fn describe(&self) -> String {
        let rate = match self.rate_per_minute {
            Some(0) => "no submission limit".to_owned(),
            Some(n) => format!("{n} submissions/min"),
            None => "the server's submission rate".to_owned(),
        };
        let running = match self.max_running {
            Some(n) => format!("{n} running at most"),
            None => "no cap on running jobs".to_owned(),
        };
        format!("{rate}, {running}")
    }

    fn from_columns(rate: Option<i64>, max_running: Option<i64>) -> Limits {
        let to_u32 = |v: i64| u32::try_from(v.max(0)).unwrap_or(u32::MAX);
        Limits {
            rate_per_minute: rate.map(to_u32),
            max_running: max_running.map(to_u32),
        }
    }
}

/// A key as stored (its hash left out: nothing but [`authenticate`] needs it).
#[derive(Clone, Debug, FromRow)]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    /// The look-up prefix: the [`LOOKUP_LEN`] characters after `sq_`.
    pub prefix: String,
    pub created_at: Timestamp,
    /// Refreshed about once a minute per web process while the key is used.
    pub last_used_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
    pub rate_per_minute: Option<i64>,
    pub max_running: Option<i64>,
}

impl ApiKey {
    pub fn limits(&self) -> Limits {
        Limits::from_columns(self.rate_per_minute, self.max_running)
    }

    /// `sq_AbCdEfGh…`: how lists show the key.
    pub fn shown_prefix(&self) -> String {
        format!("{KEY_PREFIX}{}…", self.prefix)
    }
}

/// The columns of [`ApiKey`].
macro_rules! key_columns {
    () => {
        "id, name, prefix, created_at, last_used_at, revoked_at, rate_per_minute, max_running"
    };
}

/// Why a key could not be made or revoked.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("an API key named {0:?} exists already (names are unique; revoked keys keep theirs)")]
    DuplicateName(String),
    #[error("no API key is named {0:?}")]
    UnknownName(String),
    #[error("no such API key")]
    UnknownId,
    #[error("{0}")]
    BadName(String),
    #[error("{0}")]
    BadLimit(String),
    #[error("no random bytes from the operating system: {0}")]
    Random(String),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

/// A key just made: its row, and the key itself, to show once.
#[derive(Debug)]
pub struct Created {
    pub key: ApiKey,
    pub secret: Secret,
}

/// A name a person can read and type: 1 to [`MAX_NAME_LEN`] characters, no control characters,
/// no spaces at either end.
pub fn check_name(name: &str) -> Result<(), KeyError> {
    let bad = |why: &str| Err(KeyError::BadName(format!("a key name {why}")));
    if name.trim().is_empty() {
        return bad("may not be blank");
    }
    if name.trim() != name {
        return bad("may not start or end with a space");
    }
    if name.chars().count() > MAX_NAME_LEN {
        return bad(&format!("has at most {MAX_NAME_LEN} characters"));
    }
    if name.chars().any(char::is_control) {
        return bad("may not hold control characters");
    }
    Ok(())
}

/// Limits as given (the command line, the dashboard): a rate of 0 means no limit; a cap on
/// running jobs is at least 1.
pub fn check_limits(limits: Limits) -> Result<Limits, KeyError> {
    if limits.max_running == Some(0) {
        return Err(KeyError::BadLimit(
            "max running must be at least 1 (leave it out for no cap)".into(),
        ));
    }
    Ok(limits)
}

/// A new key and its look-up prefix.
fn draw() -> Result<(String, String), KeyError> {
    let mut bytes = [0u8; RANDOM_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| KeyError::Random(e.to_string()))?;
    let encoded = URL_SAFE_NO_PAD.encode(bytes);
    let prefix = encoded[..LOOKUP_LEN].to_owned();
    Ok((format!("{KEY_PREFIX}{encoded}"), prefix))
}

/// SHA-256 of the whole key, as stored.
pub fn hash(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// The look-up prefix of a presented key, or None when it cannot be a key: `sq_` and
/// [`ENCODED_LEN`] base64url characters.
pub fn lookup_prefix(presented: &str) -> Option<&str> {
    let encoded = presented.strip_prefix(KEY_PREFIX)?;
    let well_formed = encoded.len() == ENCODED_LEN
        && encoded
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    well_formed.then(|| &encoded[..LOOKUP_LEN])
}

/// Make a key named `name` with `limits`. The key itself is in the answer and nowhere else.
pub async fn create(db: &Db, name: &str, limits: Limits) -> Result<Created, KeyError> {
    check_name(name)?;
    let limits = check_limits(limits)?;
    for _ in 0..DRAWS {
        let (secret, prefix) = draw()?;
        let id = uuid::Uuid::new_v4().to_string();
        let inserted = {
            let _write = db.write_permit().await;
            on_db!(db, |pool| {
                sqlx::query_as::<_, ApiKey>(concat!(
                    "INSERT INTO api_keys (id, name, prefix, hash, created_at, rate_per_minute, \
                     max_running) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING ",
                    key_columns!()
                ))
                .bind(&id)
                .bind(name)
                .bind(&prefix)
                .bind(hash(&secret).to_vec())
                .bind(now())
                .bind(limits.rate_per_minute.map(i64::from))
                .bind(limits.max_running.map(i64::from))
                .fetch_one(pool)
                .await
            })
        };
        match inserted {
            Ok(key) => {
                return Ok(Created {
                    key,
                    secret: Secret::new(secret),
                });
            }
            // The name is taken, or (rarely) the random prefix is: draw again only for the latter.
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                if find(db, name).await?.is_some() {
                    return Err(KeyError::DuplicateName(name.to_owned()));
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(KeyError::Random(format!(
        "{DRAWS} keys drawn in a row had a prefix in use"
    )))
}

/// The key named `name`, revoked or not.
pub async fn find(db: &Db, name: &str) -> Result<Option<ApiKey>, sqlx::Error> {
    on_db!(db, |pool| {
        sqlx::query_as::<_, ApiKey>(concat!(
            "SELECT ",
            key_columns!(),
            " FROM api_keys WHERE name = $1"
        ))
        .bind(name)
        .fetch_optional(pool)
        .await
    })
}

/// Every key, oldest first.
pub async fn list(db: &Db) -> Result<Vec<ApiKey>, sqlx::Error> {
    on_db!(db, |pool| {
        sqlx::query_as::<_, ApiKey>(concat!(
            "SELECT ",
            key_columns!(),
            " FROM api_keys ORDER BY created_at, name"
        ))
        .fetch_all(pool)
        .await
    })
}

/// Keys that are not revoked.
pub async fn active_count(db: &Db) -> Result<i64, sqlx::Error> {
    on_db!(db, |pool| {
        sqlx::query_scalar("SELECT COUNT(*) FROM api_keys WHERE revoked_at IS NULL")
            .fetch_one(pool)
            .await
    })
}

/// What [`revoke`] did.
#[derive(Debug)]
pub struct Revoked {
    pub key: ApiKey,
    /// It was revoked before this call (revoking is idempotent; the first date stays).
    pub already: bool,
}

/// Revoke the key named `name`: refused from the next request on.
pub async fn revoke(db: &Db, name: &str) -> Result<Revoked, KeyError> {
    revoke_where(db, By::Name, name)
        .await?
        .ok_or_else(|| KeyError::UnknownName(name.to_owned()))
}

/// Revoke the key with id `id` (the dashboard's button).
pub async fn revoke_id(db: &Db, id: &str) -> Result<Revoked, KeyError> {
    revoke_where(db, By::Id, id)
        .await?
        .ok_or(KeyError::UnknownId)
}

/// Which column names the key to revoke.
enum By {
    Id,
    Name,
}

async fn revoke_where(db: &Db, by: By, value: &str) -> Result<Option<Revoked>, sqlx::Error> {
    let (update, select) = match by {
        By::Id => (
            "UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
            concat!("SELECT ", key_columns!(), " FROM api_keys WHERE id = $1"),
        ),
        By::Name => (
            "UPDATE api_keys SET revoked_at = $1 WHERE name = $2 AND revoked_at IS NULL",
            concat!("SELECT ", key_columns!(), " FROM api_keys WHERE name = $1"),
        ),
    };
    let changed = {
        let _write = db.write_permit().await;
        on_db!(db, |pool| {
            sqlx::query(update)
                .bind(now())
                .bind(value)
                .execute(pool)
                .await?
                .rows_affected()
        })
    };
    let key = on_db!(db, |pool| {
        sqlx::query_as::<_, ApiKey>(select)
            .bind(value)
            .fetch_optional(pool)
            .await?
    });
    Ok(key.map(|key| Revoked {
        key,
        already: changed == 0,
    }))
}

/// A client that presented a valid key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authenticated {
    pub id: String,
    pub name: String,
    pub limits: Limits,
}

/// What a presented key turned out to be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Auth {
    Valid(Authenticated),
    /// Not of the form of a key at all.
    Malformed,
    /// No key has this prefix and hash.
    Unknown,
    Revoked,
}

#[derive(FromRow)]
struct KeyForAuth {
    id: String,
    name: String,
    hash: Vec<u8>,
    revoked_at: Option<Timestamp>,
    rate_per_minute: Option<i64>,
    max_running: Option<i64>,
}

/// Check a presented key against the database (one indexed read). The hash is compared in constant time, and computed
/// whether or not a row has the prefix.
pub async fn authenticate(db: &Db, presented: &str) -> Result<Auth, sqlx::Error> {
    let Some(prefix) = lookup_prefix(presented) else {
        return Ok(Auth::Malformed);
    };
    let digest = hash(presented);
    let row = on_db!(db, |pool| {
        sqlx::query_as::<_, KeyForAuth>(
            "SELECT id, name, hash, revoked_at, rate_per_minute, max_running FROM api_keys \
             WHERE prefix = $1",
        )
        .bind(prefix)
        .fetch_optional(pool)
        .await?
    });
    let Some(row) = row else {
        return Ok(Auth::Unknown);
    };
    let same: bool = row.hash.as_slice().ct_eq(digest.as_slice()).into();
    Ok(match (same, row.revoked_at) {
        (false, _) => Auth::Unknown,
        (true, Some(_)) => Auth::Revoked,
        (true, None) => Auth::Valid(Authenticated {
            id: row.id,
            name: row.name,
            limits: Limits::from_columns(row.rate_per_minute, row.max_running),
        }),
    })
}

/// Record that key `id` was used now (the web calls it at most about once a minute per key).
pub async fn touch(db: &Db, id: &str) -> Result<(), sqlx::Error> {
    let _write = db.write_permit().await;
    on_db!(db, |pool| {
        sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE id = $2")
            .bind(now())
            .bind(id)
            .execute(pool)
            .await?;
    });
    Ok(())
}

/// The limits of key `key_id` (revoked or not: a revoked key's jobs still run under them);
/// None for an unknown key. What a worker reads for a job's `api_key_id`.
pub async fn limits(db: &Db, key_id: &str) -> Result<Option<Limits>, sqlx::Error> {
    let row: Option<(Option<i64>, Option<i64>)> = on_db!(db, |pool| {
        sqlx::query_as("SELECT rate_per_minute, max_running FROM api_keys WHERE id = $1")
            .bind(key_id)
            .fetch_optional(pool)
            .await?
    });
    Ok(row.map(|(rate, max_running)| Limits::from_columns(rate, max_running)))
}

/// What a key's jobs amount to, among the job rows still kept (a job's row goes
/// `RESULT_TTL` + `TOMBSTONE_TTL` after it ends).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub queued: i64,
    pub running: i64,
    pub succeeded: i64,
    pub failed: i64,
    pub cancelled: i64,
    /// Items analysed by the succeeded jobs whose results are still kept (`RESULT_TTL`).
    pub items: i64,
    /// Bytes of input submitted.
    pub bytes: i64,
}

impl Usage {
    pub fn jobs(&self) -> i64 {
        self.queued + self.running + self.succeeded + self.failed + self.cancelled
    }

    fn add(&mut self, status: Status, jobs: i64, bytes: i64, items: i64) {
        let count = match status {
            Status::Queued => &mut self.queued,
            Status::Running => &mut self.running,
            Status::Succeeded => &mut self.succeeded,
            Status::Failed => &mut self.failed,
            Status::Cancelled => &mut self.cancelled,
        };
        *count += jobs;
        self.bytes += bytes;
        self.items += items;
    }
}

/// The usage aggregate: jobs, bytes and items per key and status, in one pass over the keyed
/// rows. Items come from each succeeded job's report (`result.items`), read with the dialect's
/// own JSON function.
macro_rules! usage_sql {
    ($items:literal) => {
        concat!(
            "SELECT api_key_id, status, COUNT(*), \
             CAST(COALESCE(SUM(input_bytes), 0) AS BIGINT), \
             CAST(COALESCE(SUM(",
            $items,
            "), 0) AS BIGINT) FROM sentiq_jobs WHERE api_key_id IS NOT NULL \
             GROUP BY api_key_id, status"
        )
    };
}
const USAGE_SQLITE: &str = usage_sql!("json_extract(result, '$.items')");
const USAGE_POSTGRES: &str = usage_sql!("CAST(CAST(result AS jsonb) ->> 'items' AS BIGINT)");

/// Usage of every key that has jobs, by key id.
pub async fn usage(db: &Db) -> Result<HashMap<String, Usage>, sqlx::Error> {
    type Row = (String, Status, i64, i64, i64);
    let rows: Vec<Row> = match db {
        Db::Sqlite(pool) => sqlx::query_as(USAGE_SQLITE).fetch_all(pool).await?,
        Db::Postgres(pool) => sqlx::query_as(USAGE_POSTGRES).fetch_all(pool).await?,
    };
    let mut usage: HashMap<String, Usage> = HashMap::new();
    for (key, status, jobs, bytes, items) in rows {
        usage
            .entry(key)
            .or_default()
            .add(status, jobs, bytes, items);
    }
    Ok(usage)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_key_is_sq_and_43_base64url_characters_and_names_its_own_prefix() {
        let (key, prefix) = draw().unwrap();
        assert_eq!(key.len(), KEY_PREFIX.len() + ENCODED_LEN);
        assert_eq!(lookup_prefix(&key), Some(prefix.as_str()));
        assert_eq!(prefix.len(), LOOKUP_LEN);
        assert_ne!(draw().unwrap().0, key, "two draws gave the same key");
    }

    #[test]
    fn anything_but_the_shape_of_a_key_has_no_prefix() {
        let (key, _) = draw().unwrap();
        for bad in [
            "",
            "sq_",
            &key[..key.len() - 1],
            &format!("{key}A"),
            &key.replacen("sq_", "sk_", 1),
            &format!("{}+{}", &key[..10], &key[11..]),
            &format!("{}=", &key[..key.len() - 1]),
        ] {
            assert_eq!(lookup_prefix(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_stored_hash_is_the_sha256_of_the_whole_key() {
        assert_eq!(
            hex::encode(hash("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn limits_read_as_words() {
        let limits = Limits {
            rate_per_minute: Some(10),
            max_running: Some(2),
        };
        assert_eq!(limits.describe(), "10 submissions/min, 2 running at most");
        assert_eq!(
            Limits::default().describe(),
            "the server's submission rate, no cap on running jobs"
        );
    }

    #[test]
    fn names_are_readable_and_limits_sensible() {
        for good in [
            "acme",
            "Acme Corp (staging)",
            "élan",
            &"n".repeat(MAX_NAME_LEN),
        ] {
            assert!(check_name(good).is_ok(), "{good:?}");
        }
        for bad in [
            "",
            "  ",
            " acme",
            "acme ",
            "a\tb",
            &"n".repeat(MAX_NAME_LEN + 1),
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        let zero = Limits {
            rate_per_minute: Some(0),
            max_running: Some(0),
        };
        assert!(check_limits(zero).is_err());
        assert!(
            check_limits(Limits {
                max_running: Some(1),
                ..zero
            })
            .is_ok()
        );
    }
}
