//! The SQLite pool and the migrations (ours and the queue's).

use std::str::FromStr;
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

/// The one permit our writers take in turn.
///
/// SQLite has one writer at a time; when writers collide, its busy handler makes the loser sleep
/// 1, 2, 5, 10 ... up to 100 ms before it looks again, which put 300 ms into the submission
/// latency tail under load. Writers of this process instead queue here, first come first served,
/// and meet SQLite's lock almost never (the queue's own statements are the only other writers).
/// A permit is held for one statement or one short transaction, never across another write.
static WRITE_GATE: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

/// Wait for this process's turn to write.
pub async fn write_permit() -> tokio::sync::SemaphorePermit<'static> {
    WRITE_GATE
        .acquire()
        .await
        .expect("the write gate is never closed")
}

/// Our schema (`migrations/`), recorded in sqlx's usual `_sqlx_migrations` table.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Table in which the apalis queue's own migrations are recorded, so they never meet ours.
pub const QUEUE_MIGRATIONS_TABLE: &str = "_apalis_migrations";

/// Open (creating when `mode=rwc`) the database: WAL, `synchronous=NORMAL`, foreign keys on,
/// and a busy timeout so concurrent writers wait for each other instead of failing.
pub async fn connect(url: &str) -> Result<SqlitePool, sqlx::Error> {
    let options = SqliteConnectOptions::from_str(url)?
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
    Ok(())
}
