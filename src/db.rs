//! The database: SQLite (embedded default) or PostgreSQL (production), its pools, migrations and,
//! for SQLite only, the write gate.
//!
//! [`Db`] holds either pool. Most queries are written once: sqlx's SQLite driver accepts `$1`
//! placeholders, and `RETURNING`, `ON CONFLICT ... DO UPDATE` and the types of our schema (text
//! timestamps, BIGINT, TEXT, bytes, doubles) mean the same in both dialects. [`on_db!`] expands
//! one query expression for each pool type; the few dialect-specific statements match on [`Db`].

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{
    SqliteAutoVacuum, SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{PgPool, SqlitePool};

/// Run `$body` with `$pool` bound to the pool of whichever dialect `$db` is: the body is
/// type-checked once per dialect, so one query text serves both.
#[macro_export]
macro_rules! on_db {
    ($db:expr, |$pool:ident| $body:expr) => {
        match $db {
            $crate::db::Db::Sqlite($pool) => $body,
            $crate::db::Db::Postgres($pool) => $body,
        }
    };
}

/// Read a type stored as TEXT (in both dialects) through its `FromStr`: a stored value the type
/// does not know is a decoding error, never a default.
#[macro_export]
macro_rules! text_column {
    ($ty:ty) => {
        impl sqlx::Type<sqlx::Sqlite> for $ty {
            fn type_info() -> sqlx::sqlite::SqliteTypeInfo {
                <str as sqlx::Type<sqlx::Sqlite>>::type_info()
            }
            fn compatible(ty: &sqlx::sqlite::SqliteTypeInfo) -> bool {
                <str as sqlx::Type<sqlx::Sqlite>>::compatible(ty)
            }
        }
        impl sqlx::Type<sqlx::Postgres> for $ty {
            fn type_info() -> sqlx::postgres::PgTypeInfo {
                <str as sqlx::Type<sqlx::Postgres>>::type_info()
            }
            fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
                <str as sqlx::Type<sqlx::Postgres>>::compatible(ty)
            }
        }
        impl<'r> sqlx::Decode<'r, sqlx::Sqlite> for $ty {
            fn decode(
                value: sqlx::sqlite::SqliteValueRef<'r>,
            ) -> Result<Self, sqlx::error::BoxDynError> {
                Ok(<&str as sqlx::Decode<sqlx::Sqlite>>::decode(value)?.parse::<$ty>()?)
            }
        }
        impl<'r> sqlx::Decode<'r, sqlx::Postgres> for $ty {
            fn decode(
                value: sqlx::postgres::PgValueRef<'r>,
            ) -> Result<Self, sqlx::error::BoxDynError> {
                Ok(<&str as sqlx::Decode<sqlx::Postgres>>::decode(value)?.parse::<$ty>()?)
            }
        }
    };
}

/// A stored value that its type does not know (a row written by a newer version, or by hand).
#[derive(Debug, thiserror::Error)]
#[error("unknown {kind} {value:?} in the database")]
pub struct UnknownValue {
    pub kind: &'static str,
    pub value: String,
}

/// The one permit our writers take in turn.
///
/// SQLite has one writer at a time; when writers collide, its busy handler makes the loser sleep
/// 1, 2, 5, 10 ... up to 100 ms before it looks again, which put 300 ms into the submission
/// latency tail under load. Writers of this process instead queue here, first come first served,
/// and meet SQLite's lock almost never (the queue's own statements are the only other writers).
/// A permit is held for one statement or one short transaction, never across another write.
/// PostgreSQL has row locks and needs no gate (see [`Db::write_permit`]).
static WRITE_GATE: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

/// Wait for this process's turn to write (SQLite).
pub async fn write_permit() -> tokio::sync::SemaphorePermit<'static> {
    WRITE_GATE
        .acquire()
        .await
        .expect("the write gate is never closed")
}

/// Our SQLite schema (`migrations/sqlite/`), recorded in sqlx's usual `_sqlx_migrations` table.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// Our PostgreSQL schema (`migrations/postgres/`), the same tables and triggers.
pub static POSTGRES_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Table in which the apalis queue's own migrations are recorded, so they never meet ours.
pub const QUEUE_MIGRATIONS_TABLE: &str = "_apalis_migrations";

/// Open (creating when `mode=rwc`) the database: WAL, `synchronous=NORMAL`, foreign keys on,
/// and a busy timeout so concurrent writers wait for each other instead of failing.
///
/// Deleted data must not stay in the file, and the file must not keep the size of what it
/// once held: `secure_delete` overwrites deleted content with zeros (so a deleted job's text is
/// gone from the file once the WAL is checkpointed, not merely unlinked), and
/// `auto_vacuum = INCREMENTAL` lets the pruner give freed pages back to the file system
/// ([`crate::jobs::retention::reclaim`]). `auto_vacuum` takes effect when the file is created;
/// an older file is converted once by [`migrate`].
pub async fn connect(url: &str) -> Result<SqlitePool, sqlx::Error> {
    let options = SqliteConnectOptions::from_str(url)?
        .auto_vacuum(SqliteAutoVacuum::Incremental)
        .pragma("secure_delete", "on")
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(30))
        .pragma("temp_store", "memory");
    SqlitePoolOptions::new()
        .max_connections(8)
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(options)
        .await
}

/// Apply the queue's migrations (into their own table) and ours.
///
/// apalis-sqlite's `setup` would write its migrations into `_sqlx_migrations` too, and whichever
/// migrator ran second would then refuse to start ("previously applied but is missing"); it would
/// also switch the connection to `synchronous=OFF`. We run its migrator ourselves instead.
pub async fn migrate(pool: &SqlitePool) -> Result<(), sqlx::migrate::MigrateError> {
    let mut queue = apalis_sqlite::SqliteStorage::<()>::migrations();
    queue.dangerous_set_table_name(QUEUE_MIGRATIONS_TABLE);
    queue.run(pool).await?;
    MIGRATOR.run(pool).await?;
    // A file created before incremental auto-vacuum was asked for: rebuild it once (it takes
    // as long as copying the file, and is never needed again).
    let auto_vacuum: i64 = sqlx::query_scalar("PRAGMA auto_vacuum")
        .fetch_one(pool)
        .await?;
    if auto_vacuum != 2 {
        tracing::info!("rebuilding the SQLite file once for incremental auto-vacuum");
        sqlx::query("VACUUM").execute(pool).await?;
    }
    // A migration may write planner statistics (see `migrations/sqlite/*_statistics.sql`).
    // Connections opened from now on read them; the ones the pool already holds keep planning
    // with what they read at their start until told to read them again.
    let mut held = Vec::new();
    for _ in 0..pool.size() {
        let mut connection = pool.acquire().await?;
        sqlx::query("ANALYZE sqlite_schema")
            .execute(&mut *connection)
            .await?;
        held.push(connection);
    }
    Ok(())
}

/// How long a request waits for a PostgreSQL connection before it is told the service is
/// unavailable (503): short, so an outage answers quickly instead of piling requests up.
pub const PG_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// How a PostgreSQL connection plans a statement it has prepared and runs again and again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plans {
    /// PostgreSQL's default: after five runs a statement may keep one generic plan for the
    /// rest of the connection's life (until an `ANALYZE` or a schema change invalidates it).
    Cached,
    /// A plan for every run, made with that run's parameters (`plan_cache_mode =
    /// force_custom_plan`). For the worker: its claim and finish statements take arrays of one
    /// to hundreds of ids and run for the whole life of the process against a table that grows
    /// from empty to millions of rows. A generic plan guesses ten ids and takes the table's
    /// size at the moment it is made; made while the table was small, it reads the whole table
    /// on every claim and finish from then on, and nothing replans it while autovacuum has not
    /// analysed the table (never, where autovacuum is off). Measured at 5,000 jobs/s after a
    /// `TRUNCATE` (BENCHMARKS.md): PostgreSQL's CPU per job fell to 0.61 of what it was, and
    /// the worker kept up again. A plan costs 0.1 to 0.3 ms per statement, shared by its batch
    /// of jobs: up to about 10 µs per job where the cached plan would have been right.
    PerRun,
}

/// Open a PostgreSQL pool of at most `max_connections`, planning as `plans` says.
///
/// Connections are not pinged before use (`test_before_acquire(false)`): that would add a round
/// trip to every query. After a database restart each stale connection fails once (the request
/// answers 503, the connection is dropped) and the pool reconnects.
pub async fn connect_postgres(
    url: &str,
    max_connections: u32,
    plans: Plans,
) -> Result<PgPool, sqlx::Error> {
    let mut options = PgConnectOptions::from_str(url)?.application_name("sentiq");
    if plans == Plans::PerRun {
        options = options.options([("plan_cache_mode", "force_custom_plan")]);
    }
    let max_connections = max_connections.max(2);
    PgPoolOptions::new()
        .max_connections(max_connections)
        // Warm connections: a new one costs a handshake and first-use statement preparation,
        // which would land in the pick-up and submission latency tail.
        .min_connections(max_connections.min(4))
        .acquire_timeout(PG_ACQUIRE_TIMEOUT)
        .test_before_acquire(false)
        .after_connect(|_, _| {
            Box::pin(async {
                no_delay_on_tcp_sockets();
                Ok(())
            })
        })
        .connect_with(options)
        .await
}

/// Turn Nagle's algorithm off on every TCP socket of this process, the PostgreSQL connection
/// just made among them.
///
/// sqlx leaves `TCP_NODELAY` unset and offers no way to set it. With Nagle on, a statement
/// whose message ends in a partly filled segment (a bound chunk of items, an input part) waits
/// for the server's delayed acknowledgement, up to 40 ms, before its last bytes leave: a large
/// job's item writes then spent most of their time waiting (BENCHMARKS.md, "Memory"). The
/// option is harmless on the process's other TCP sockets (the HTTP server and the Redis client
/// set it themselves); an fd that is not a TCP socket refuses it, which is ignored.
#[cfg(target_os = "linux")]
fn no_delay_on_tcp_sockets() {
    use std::os::fd::BorrowedFd;
    let Ok(fds) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    for entry in fds.flatten() {
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let is_socket = std::fs::read_link(entry.path())
            .is_ok_and(|target| target.to_string_lossy().starts_with("socket:"));
        if !is_socket {
            continue;
        }
        // SAFETY: the fd was open a moment ago and is only borrowed for one setsockopt; if it
        // was closed (and its number reused) meanwhile, the call fails or sets a harmless
        // option on another socket of ours.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        let _ = socket2::SockRef::from(&fd).set_tcp_nodelay(true);
    }
}

#[cfg(not(target_os = "linux"))]
fn no_delay_on_tcp_sockets() {}

/// Whether a URL names a PostgreSQL database.
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// Either database.
#[derive(Clone, Debug)]
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl Db {
    /// Open the database `url` names (`postgres://`, `postgresql://` or `sqlite://`).
    /// `pg_connections` sizes the PostgreSQL pool and `plans` sets how it plans (SQLite's pool
    /// is fixed, see [`connect`]).
    pub async fn open(url: &str, pg_connections: u32, plans: Plans) -> Result<Db, sqlx::Error> {
        if is_postgres_url(url) {
            Ok(Db::Postgres(
                connect_postgres(url, pg_connections, plans).await?,
            ))
        } else {
            Ok(Db::Sqlite(connect(url).await?))
        }
    }

    /// Apply the migrations of this dialect, then convert the rows the schema changes left to
    /// the application (idempotent).
    pub async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        match self {
            Db::Sqlite(pool) => migrate(pool).await?,
            Db::Postgres(pool) => POSTGRES_MIGRATOR.run(pool).await?,
        }
        crate::jobs::model::convert_legacy_items(self)
            .await
            .map_err(sqlx::migrate::MigrateError::Execute)?;
        Ok(())
    }

    /// The SQLite write gate's permit for SQLite; nothing for PostgreSQL.
    pub async fn write_permit(&self) -> Option<tokio::sync::SemaphorePermit<'static>> {
        match self {
            Db::Sqlite(_) => Some(write_permit().await),
            Db::Postgres(_) => None,
        }
    }

    /// The SQLite pool, when this is SQLite.
    pub fn sqlite(&self) -> Option<&SqlitePool> {
        match self {
            Db::Sqlite(pool) => Some(pool),
            Db::Postgres(_) => None,
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Db::Postgres(_))
    }

    /// One trivial query: does the database answer?
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        on_db!(self, |pool| sqlx::query("SELECT 1")
            .execute(pool)
            .await
            .map(|_| ()))
    }

    pub async fn close(&self) {
        on_db!(self, |pool| pool.close().await)
    }
}

/// Whether an error means "the database is not reachable right now" (the request may be
/// retried later) rather than a bug or bad data.
pub fn is_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => true,
        // 57P01 admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now,
        // 08xxx connection exceptions, 53300 too_many_connections.
        sqlx::Error::Database(db) => db.code().is_some_and(|c| {
            c.starts_with("08") || c.starts_with("57P") || c == "53300" || c == "53000"
        }),
        _ => false,
    }
}

/// The database cannot grow: its disk (or a quota) is full. SQLite says `SQLITE_FULL` (13,
/// "database or disk is full"), PostgreSQL `53100 disk_full`. Nothing was written: the
/// statement's transaction rolled back whole, so trying again once there is room works.
pub fn is_storage_full(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => db.code().is_some_and(|c| c == "13" || c == "53100"),
        _ => false,
    }
}

/// A database URL without its password, for logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            if userinfo.contains(':') {
                format!("{}://{user}:***{}", &url[..s], &url[at..])
            } else {
                url.to_owned()
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_from_logged_urls() {
        assert_eq!(
            redact("postgres://u:secret@db:5432/x"),
            "postgres://u:***@db:5432/x"
        );
        assert_eq!(redact("rediss://:pw@h:6380"), "rediss://:***@h:6380");
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert_eq!(
            redact("postgres://postgres@127.0.0.1/x"),
            "postgres://postgres@127.0.0.1/x"
        );
        assert_eq!(
            redact("sqlite://sentiq.db?mode=rwc"),
            "sqlite://sentiq.db?mode=rwc"
        );
    }

    #[test]
    fn postgres_urls_are_recognised() {
        assert!(is_postgres_url("postgres://x"));
        assert!(is_postgres_url("postgresql://x"));
        assert!(!is_postgres_url("sqlite://x"));
    }
}
