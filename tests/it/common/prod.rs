//! The production topology in-process, on the machine's real PostgreSQL and Redis: a fresh
//! database (`sentiq_t_<random>`, dropped afterwards) and a fresh Redis key namespace (its keys
//! deleted afterwards) per test, a web-only app on a free port, and any number of workers.
//!
//! `TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`) names the server
//! and an existing database to connect to for `CREATE DATABASE`; `TEST_REDIS_URL` (default
//! `redis://127.0.0.1:6379`) the Redis server. The shared Redis is never flushed.

use std::time::{Duration, Instant};

use super::Api;
use redis::AsyncCommands;
use sentiq::config::Config;
use sentiq::db::Db;
use sentiq::deps::Deps;
use sentiq::jobs::model;
use sentiq::jobs::queue::RedisQueue;
use sentiq::startup::{Application, run_worker_until};
use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::oneshot;

pub fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// `admin_url` with its database replaced by `name`.
fn database_url(name: &str) -> String {
    let admin = admin_url();
    let (base, query) = match admin.split_once('?') {
        Some((b, q)) => (b.to_owned(), format!("?{q}")),
        None => (admin.clone(), String::new()),
    };
    let cut = base.rfind('/').expect("a database URL has a path");
    format!("{}/{name}{query}", &base[..cut])
}

/// A running worker process stand-in (`sentiq worker` in this process).
pub struct WorkerHandle {
    stop: Option<oneshot::Sender<()>>,
    join: tokio::task::JoinHandle<Result<(), sentiq::startup::StartupError>>,
}

impl WorkerHandle {
    /// Stop like SIGTERM does and wait for the worker to return.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        tokio::time::timeout(Duration::from_secs(30), &mut self.join)
            .await
            .expect("the worker stops within 30 s")
            .expect("worker task")
            .expect("worker ran");
    }

    /// Stop abruptly (like SIGKILL: no hand-back, no clean-up).
    pub fn kill(self) {
        self.join.abort();
    }
}

/// The production topology in-process; its requests and polling are [`Api`]'s.
pub struct ProdApp {
    pub api: Api,
    pub config: Config,
    pub db: Db,
    pub pg: PgPool,
    pub deps: Deps,
    pub redis: RedisQueue,
    pub database: String,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

/// The configuration of a fresh test deployment (database created, nothing started).
pub async fn prod_config(change: impl FnOnce(&mut Config)) -> Config {
    if std::env::var("TEST_LOG").is_ok() {
        sentiq::telemetry::init();
    }
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let database = format!("sentiq_t_{}", &suffix[..16]);
    let mut admin = PgConnection::connect(&admin_url())
        .await
        .expect("PostgreSQL is up (TEST_DATABASE_URL)");
    // The name is ours: `sentiq_t_` and hex digits.
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {database}")))
        .execute(&mut admin)
        .await
        .expect("create the test database");
    let _ = admin.close().await;
    let mut config = Config::default();
    config.http.host = "127.0.0.1".into();
    config.http.port = 0;
    config.database.url = database_url(&database);
    config.database.max_connections = Some(8);
    config.queue.redis_url = Some(redis_url());
    config.queue.redis_namespace = format!("sentiq_t_{}", &suffix[16..]);
    config.queue.poll_interval = Duration::from_millis(100);
    // Tests submit faster than one client may; the rate limit has its own test.
    config.limits.submit_rate_per_minute = 0;
    config.worker.timing.reconcile_every = Duration::from_millis(200);
    change(&mut config);
    config
}

/// Web (only) on a free port with a fresh database and namespace; no workers yet.
pub async fn spawn_prod(change: impl FnOnce(&mut Config)) -> ProdApp {
    let config = prod_config(change).await;
    spawn_prod_with(config).await
}

pub async fn spawn_prod_with(config: Config) -> ProdApp {
    let app = Application::build(config.clone())
        .await
        .expect("app builds");
    let port = app.port();
    let deps = app.deps().clone();
    let db = deps.db().clone();
    let pg = match &db {
        Db::Postgres(p) => p.clone(),
        Db::Sqlite(_) => panic!("a PostgreSQL app"),
    };
    // A separate client of the test's namespace (the app's may point elsewhere on purpose).
    let redis = RedisQueue::connect(&redis_url(), &config.queue.redis_namespace).unwrap();
    let server = tokio::spawn(app.run_until_stopped());
    let database = config
        .database
        .url
        .rsplit('/')
        .next()
        .unwrap()
        .split('?')
        .next()
        .unwrap()
        .to_owned();
    ProdApp {
        api: Api::new(port),
        config,
        db,
        pg,
        deps,
        redis,
        database,
        server: Some(server),
    }
}

/// Start a worker (as `sentiq worker` would) with this app's configuration, changed.
pub fn start_worker(config: &Config, change: impl FnOnce(&mut Config)) -> WorkerHandle {
    let mut config = config.clone();
    change(&mut config);
    let (tx, rx) = oneshot::channel::<()>();
    let join = tokio::spawn(run_worker_until(config, async move {
        let _ = rx.await;
        Ok(())
    }));
    WorkerHandle {
        stop: Some(tx),
        join,
    }
}

impl std::ops::Deref for ProdApp {
    type Target = Api;

    fn deref(&self) -> &Api {
        &self.api
    }
}

impl ProdApp {
    pub fn worker(&self) -> WorkerHandle {
        start_worker(&self.config, |_| {})
    }

    /// Until every job is final (at most `within`), straight from the table.
    pub async fn wait_all_final(&self, within: Duration) {
        let start = Instant::now();
        loop {
            let open: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM sentiq_jobs WHERE status IN ('queued', 'running')",
            )
            .fetch_one(&self.pg)
            .await
            .unwrap();
            if open == 0 {
                return;
            }
            assert!(
                start.elapsed() < within,
                "{open} jobs still open after {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn job_rows(&self) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM sentiq_jobs")
            .fetch_one(&self.pg)
            .await
            .unwrap()
    }

    /// The status path of a job, from the database's transition log.
    pub async fn path(&self, id: &str) -> Vec<(String, String, i64)> {
        model::transitions(&self.db, id)
            .await
            .unwrap()
            .into_iter()
            .map(|t| (t.from_status, t.to_status, t.attempt))
            .collect()
    }

    /// Keys of this test's namespace.
    pub async fn keys(&self) -> Vec<String> {
        let mut conn = self.redis.connection();
        let mut keys = Vec::new();
        let mut it = conn
            .scan_match::<_, String>(format!("{}:*", self.config.queue.redis_namespace))
            .await
            .unwrap();
        while let Some(k) = futures_util::StreamExt::next(&mut it).await {
            keys.push(k.unwrap());
        }
        keys
    }

    /// Delete every key of this test's namespace (as a Redis restart without persistence or a
    /// FLUSHALL would, for this deployment).
    pub async fn delete_namespace(&self) {
        let keys = self.keys().await;
        let mut conn = self.redis.connection();
        for k in keys {
            let _: () = conn.del(k).await.unwrap();
        }
    }
}

impl Drop for ProdApp {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            s.abort();
        }
        let database = self.database.clone();
        let namespace = self.config.queue.redis_namespace.clone();
        // The test's runtime is going away: clean up from a thread with its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                if let Ok(mut admin) = PgConnection::connect(&admin_url()).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {database} WITH (FORCE)"
                    )))
                    .execute(&mut admin)
                    .await;
                }
                if let Ok(client) = redis::Client::open(redis_url())
                    && let Ok(mut conn) = client.get_multiplexed_async_connection().await
                {
                    let keys: Vec<String> = {
                        let mut keys = Vec::new();
                        if let Ok(mut it) =
                            conn.scan_match::<_, String>(format!("{namespace}:*")).await
                        {
                            while let Some(Ok(k)) = futures_util::StreamExt::next(&mut it).await {
                                keys.push(k);
                            }
                        }
                        keys
                    };
                    for k in keys {
                        let _: Result<(), _> = conn.del(k).await;
                    }
                    for q in ["quick", "bulk"] {
                        let _: Result<(), _> = conn
                            .zrem(
                                "core:apalis:queues:list",
                                format!("{namespace}:{q}:workers"),
                            )
                            .await;
                    }
                }
            });
        })
        .join();
    }
}
