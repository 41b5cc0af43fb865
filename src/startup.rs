//! Building and running the application: database, queue, HTTP server and workers.
//!
//! Topologies: SQLite + embedded queue (`serve` runs the workers in-process unless
//! `RUN_WORKER=false`), or any database + Redis (`serve` is web only; `worker` runs workers and
//! the reconciler). PostgreSQL without Redis is refused at start-up.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::middleware::DefaultHeaders;
use actix_web::{App, HttpServer, web};
use apalis::prelude::Monitor;
use tokio::sync::watch;

use crate::config::Config;
use crate::db::{Db, Plans};
use crate::deps::Deps;
use crate::jobs::queue::{QueueName, RedisQueue};
use crate::jobs::store::JobStore;
use crate::jobs::worker;
use crate::web::wait::Waiters;
use crate::web::{AppState, routes};
use crate::webhooks::delivery::{self, Sender};

/// How long shutdown waits for running jobs before giving up (within Heroku's 30 s).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(25);

/// How long an idle client connection is kept open for its next request. Longer than actix's
/// 5 s so a router or client that reuses connections rarely meets one closing under it; short
/// enough that idle connections do not hold `MAX_CONNECTIONS` for long.
pub const KEEP_ALIVE: Duration = Duration::from_secs(30);
/// How long a client has to send a request's headers once it starts one (then 408): a client
/// that opens connections and sends nothing holds each for this long at most.
pub const HEADERS_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a closing connection may take to flush and shut down.
pub const DISCONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Connections the kernel holds for `serve` while `MAX_CONNECTIONS` are open (the body of a
/// request is paced separately: [`crate::web::slow_body`]).
pub const LISTEN_BACKLOG: i32 = 2048;

/// Errors that stop the application from starting.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("could not open the database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("could not migrate the database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("could not listen: {0}")]
    Io(#[from] std::io::Error),
    #[error("could not set up the Redis queue: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("could not set up the webhook client: {0}")]
    Webhooks(#[from] reqwest::Error),
    #[error("{0}")]
    Config(String),
}

/// Open (and migrate) the database and set up the queue `config` names.
pub async fn open(
    config: &Config,
    pg_connections: u32,
    plans: Plans,
) -> Result<Deps, StartupError> {
    // Refuses the embedded queue on PostgreSQL, before any store exists.
    config.check().map_err(StartupError::Config)?;
    let db = Db::open(&config.database.url, pg_connections, plans).await?;
    db.migrate().await?;
    let store = match (db, &config.queue.redis_url) {
        (db, Some(url)) => {
            let redis = RedisQueue::connect(url, &config.queue.redis_namespace)?;
            JobStore::distributed(db, redis, config.retention)
        }
        (Db::Sqlite(pool), None) => JobStore::embedded(pool, config.retention),
        (Db::Postgres(_), None) => {
            unreachable!("Config::check refuses PostgreSQL without Redis")
        }
    };
    Ok(Deps::new(store, config.worker.timing)
        .with_analysis_memory(config.http.memory_budget_bytes / 2))
}

/// A built, bound, not yet running application.
pub struct Application {
    port: u16,
    server: Server,
    config: Config,
    deps: Deps,
    waiters: Arc<Waiters>,
    streams: Arc<Waiters>,
    /// The webhook sender of the in-process worker (None: no worker here, or no secret).
    webhooks: Option<Arc<Sender>>,
    /// The API keys this process authenticated lately (`web::caller::KeyCache`).
    key_cache: Arc<crate::web::caller::KeyCache>,
}

impl Application {
    /// Open and migrate the database, bind the listener (port 0 picks a free one) and build
    /// the server. Workers start in [`Application::run_until_stopped`] when
    /// `config.worker.run_in_process`.
    pub async fn build(mut config: Config) -> Result<Application, StartupError> {
        // With Redis, `serve` is web only: workers are separate processes.
        if config.queue.redis_url.is_some() {
            config.worker.run_in_process = false;
        }
        // The web's statements insert rows or look one up by key: their cached plans stay right
        // as the table grows (the worker's do not, see `Plans::PerRun`).
        let connections = config
            .database
            .max_connections
            .unwrap_or(crate::config::SERVE_CONNECTIONS);
        let deps = open(&config, connections, Plans::Cached).await?;
        let webhooks = match config.worker.run_in_process {
            true => Sender::new(&config)?.map(Arc::new),
            false => None,
        };
        let listener = TcpListener::bind((config.http.host.as_str(), config.http.port))?;
        // std listens with a backlog of 128, and actix's own `backlog` setting only applies to
        // addresses it binds itself: listening again sets ours (Linux caps it at somaxconn).
        socket2::SockRef::from(&listener).listen(LISTEN_BACKLOG)?;
        let port = listener.local_addr()?.port();
        let waiters = Arc::new(Waiters::new(config.limits.max_waiters));
        let streams = Arc::new(Waiters::new(config.limits.max_event_streams));
        // API keys' submission buckets are shared by every web process: in Redis when there
        // is one, else (one process serves everything) in this process.
        let shared_limits = match &config.queue.redis_url {
            Some(url) => Some(RedisQueue::connect(url, &config.queue.redis_namespace)?),
            None => None,
        };
        let key_cache = Arc::new(crate::web::caller::KeyCache::default());
        let state = web::Data::new(AppState {
            submit_limit: Arc::new(crate::web::rate_limit::SubmitLimit::new(
                &config,
                shared_limits,
            )),
            waiters: waiters.clone(),
            streams: streams.clone(),
            key_use: Arc::default(),
            key_cache: key_cache.clone(),
            body_budget: Arc::new(crate::web::upload::Budget::new(
                config.http.memory_budget_bytes / 2,
                crate::web::upload::ADMISSION_WAIT,
            )),
            submissions: Arc::new(tokio::sync::Semaphore::new(
                config.http.max_submissions_in_flight,
            )),
            config: config.clone(),
            deps: deps.clone(),
        });
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .wrap(security_headers())
                .wrap(actix_web::middleware::from_fn(
                    crate::web::slow_body::pace_bodies,
                ))
                .wrap(actix_web::middleware::from_fn(
                    crate::web::request_log::log_request,
                ))
                .configure(routes)
        });
        let threads = match config.http.web_concurrency {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let server = server
            .workers(threads)
            // actix counts connections per HTTP thread; MAX_CONNECTIONS is the process's.
            .max_connections(config.http.max_connections.div_ceil(threads))
            .keep_alive(KEEP_ALIVE)
            .client_request_timeout(HEADERS_TIMEOUT)
            .client_disconnect_timeout(DISCONNECT_TIMEOUT)
            .shutdown_timeout(SHUTDOWN_GRACE.as_secs())
            // actix would stop at once on SIGINT, dropping requests in flight; we drain on both
            // signals (see `run_until_stopped`).
            .disable_signals()
            .listen(listener)?
            .run();
        Ok(Application {
            port,
            server,
            config,
            deps,
            waiters,
            streams,
            webhooks,
            key_cache,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn db(&self) -> &Db {
        self.deps.db()
    }

    /// What the job handler needs (the same value the in-process workers use).
    pub fn deps(&self) -> &Deps {
        &self.deps
    }

    /// Serve until SIGINT/SIGTERM; then stop accepting, let requests in flight finish (up to
    /// [`SHUTDOWN_GRACE`]), stop fetching jobs and let running ones finish.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let handle = self.server.handle();
        let (waiters, streams) = (self.waiters.clone(), self.streams.clone());
        let signals = tokio::spawn(async move {
            if shutdown_signal().await.is_ok() {
                tracing::info!(
                    "stop signal received: no new connections, draining requests in flight"
                );
                // Waiting requests answer now rather than hold up the drain.
                waiters.stop();
                streams.stop();
                handle.stop(true).await;
            }
        });
        // Change signals of jobs run by other processes, for the event streams.
        let events = tokio::spawn(self.deps.store.events().clone().listen());
        // Revoked and changed API keys leave this process's cache (PostgreSQL only).
        let key_changes = match self.deps.db() {
            Db::Postgres(pool) => Some(tokio::spawn(crate::web::caller::listen_for_key_changes(
                self.key_cache.clone(),
                pool.clone(),
            ))),
            Db::Sqlite(_) => None,
        };
        let (stop, stopped) = watch::channel(false);
        let workers = self
            .config
            .worker
            .run_in_process
            .then(|| spawn_workers(&self.config, &self.deps, stopped));
        let reconciler = self
            .config
            .worker
            .run_in_process
            .then(|| tokio::spawn(worker::reconcile_forever(self.deps.clone())));
        let deliveries = self
            .webhooks
            .map(|sender| tokio::spawn(delivery::deliver_forever(self.deps.clone(), sender)));
        // The worker registry of the dashboard: this process runs workers, so it beats.
        let heartbeat =
            self.config.worker.run_in_process.then(|| {
                crate::jobs::registry::Heartbeat::start(&self.config, &self.deps, "serve")
            });
        let served = self.server.await;
        signals.abort();
        events.abort();
        if let Some(k) = key_changes {
            k.abort();
        }
        let _ = stop.send(true);
        if let Some(r) = reconciler {
            r.abort();
        }
        if let Some(d) = deliveries {
            d.abort();
        }
        if let Some(w) = workers {
            let mut w = w;
            wait_for_workers(&mut w, &self.deps).await;
        }
        // After the drain: the worker is alive while it finishes its jobs.
        if let Some(h) = heartbeat {
            h.stop().await;
        }
        served
    }
}

/// Wait for the workers to finish their jobs; past [`HAND_BACK_AFTER`], stop the jobs still
/// running and hand them back to the queue, so the whole stop fits in [`SHUTDOWN_GRACE`].
async fn wait_for_workers<T>(workers: &mut tokio::task::JoinHandle<T>, deps: &Deps) {
    if tokio::time::timeout(HAND_BACK_AFTER, &mut *workers)
        .await
        .is_ok()
    {
        return;
    }
    tracing::warn!("jobs still running at shutdown: handing them back to the queue");
    deps.hand_back_running_jobs();
    if tokio::time::timeout(SHUTDOWN_GRACE - HAND_BACK_AFTER, workers)
        .await
        .is_err()
    {
        tracing::warn!("workers did not stop in time");
    }
}

/// How long shutdown lets running jobs finish before handing them back.
pub const HAND_BACK_AFTER: Duration = Duration::from_secs(20);

/// The base of the restart pauses of a queue whose worker keeps failing (Redis or the database
/// unreachable): [`worker::backoff`] doubles it per failure in a row, up to 64 times, with jitter.
const RESTART_PAUSE: Duration = Duration::from_millis(250);

/// A worker that ran this long before it failed restarts after the shortest pause again.
const RAN_WELL: Duration = Duration::from_secs(30);

/// Run the workers of `config.worker.queues` until `stop` turns true (or its sender is dropped); the
/// task ends when every queue's worker has stopped.
///
/// Each queue has a monitor of its own, rebuilt here (new worker names) after an async pause
/// whenever its worker fails, while the other queues go on. apalis's own restart is declined:
/// it builds and polls the new worker within the same poll of the monitor, so a worker that
/// fails at once (a closed pool, Redis down) would spin without ever yielding to the runtime,
/// and a runtime could not even shut down around it.
pub fn spawn_workers(
    config: &Config,
    deps: &Deps,
    stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let queues: Vec<_> = config
        .worker
        .queues
        .iter()
        .map(|queue| run_queue(config.clone(), deps.clone(), *queue, stop.clone()))
        .collect();
    tokio::spawn(async move {
        futures_util::future::join_all(queues).await;
    })
}

/// One queue's worker under [`spawn_workers`].
async fn run_queue(config: Config, deps: Deps, queue: QueueName, mut stop: watch::Receiver<bool>) {
    let mut failures = 0;
    loop {
        let monitor = Monitor::new()
            .shutdown_timeout(SHUTDOWN_GRACE)
            .should_restart(|ctx, err| {
                tracing::warn!(worker = ctx.name(), error = %err, "worker failed; it restarts after a pause");
                false
            });
        let monitor = worker::register_jobs(
            monitor,
            &deps,
            queue,
            config.worker.concurrency,
            config.worker.in_flight,
            config.queue.poll_interval,
        );
        let mut signal = stop.clone();
        let started = std::time::Instant::now();
        // With a terminator apalis reports Ok however the worker ended; the flag tells.
        let _ = monitor
            .run_with_signal(async move {
                let _ = signal.wait_for(|stopping| *stopping).await;
                Ok(())
            })
            .await;
        if stopping(&stop) {
            return;
        }
        failures = if started.elapsed() >= RAN_WELL {
            1
        } else {
            failures + 1
        };
        tokio::select! {
            _ = tokio::time::sleep(worker::backoff(RESTART_PAUSE, failures)) => {}
            _ = stop.wait_for(|stopping| *stopping) => return,
        }
    }
}

/// Whether the workers were told to stop (a dropped sender counts: nobody can tell them now).
fn stopping(stop: &watch::Receiver<bool>) -> bool {
    *stop.borrow() || stop.has_changed().is_err()
}

/// Run workers only (the `worker` command) until SIGINT/SIGTERM.
pub async fn run_worker(config: Config) -> Result<(), StartupError> {
    run_worker_until(config, shutdown_signal()).await
}

/// Database connections a worker process needs. Claims and finishes of small jobs share a few
/// group-committing writers ([`crate::jobs::batch::WRITERS`] of each), so the count does not
/// grow with the concurrency beyond a point: the rest is for item inserts of large jobs, lease
/// refreshes, progress and the reconciler, each holding a connection for one short statement.
/// `DATABASE_MAX_CONNECTIONS` caps it for small database plans: the statements then queue for
/// a connection a moment longer (measured in BENCHMARKS.md), nothing else changes.
fn worker_connections(config: &Config) -> u32 {
    let runs = config.worker.concurrency * config.worker.queues.len();
    let needed = (2 * crate::jobs::batch::WRITERS + runs.min(12) + 2) as u32;
    config
        .database
        .max_connections
        .map_or(needed, |cap| needed.min(cap))
}

/// A worker's own `/metrics` (its job counters and histograms live in this process) on
/// `host:port`, for Prometheus to scrape beside each web process.
fn serve_worker_metrics(
    host: &str,
    port: u16,
    deps: &Deps,
) -> Result<actix_web::dev::ServerHandle, StartupError> {
    async fn metrics(
        deps: web::Data<Deps>,
    ) -> Result<actix_web::HttpResponse, crate::web::errors::ApiError> {
        Ok(actix_web::HttpResponse::Ok()
            .content_type("text/plain; version=0.0.4; charset=utf-8")
            .body(crate::metrics::text(&deps).await?))
    }
    let deps = web::Data::new(deps.clone());
    let listener = TcpListener::bind((host, port))?;
    tracing::info!(
        port = listener.local_addr()?.port(),
        "worker metrics served at /metrics"
    );
    let server = HttpServer::new(move || {
        App::new()
            .app_data(deps.clone())
            .route("/metrics", web::get().to(metrics))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    Ok(handle)
}

/// Run workers of `config.worker.queues` and the reconciler until `stop` resolves; then stop fetching,
/// let running jobs finish (handing back those still running after [`HAND_BACK_AFTER`]).
pub async fn run_worker_until(
    config: Config,
    stop: impl std::future::Future<Output = std::io::Result<()>> + Send + 'static,
) -> Result<(), StartupError> {
    let deps = open(&config, worker_connections(&config), Plans::PerRun).await?;
    tracing::info!(queues = ?config.worker.queues, concurrency = config.worker.concurrency,
        in_flight = config.worker.in_flight,
        queue = if config.queue.redis_url.is_some() { "redis" } else { "embedded" }, "worker started");
    let reconciler = tokio::spawn(worker::reconcile_forever(deps.clone()));
    let deliveries = Sender::new(&config)?
        .map(|sender| tokio::spawn(delivery::deliver_forever(deps.clone(), Arc::new(sender))));
    let heartbeat = crate::jobs::registry::Heartbeat::start(&config, &deps, "worker");
    let metrics_server = match config.worker.metrics_port {
        Some(port) => Some(serve_worker_metrics(&config.http.host, port, &deps)?),
        None => None,
    };
    let listener = deps.store.listen_for_wakes(config.worker.queues.clone());
    let (stop_workers, stopped) = watch::channel(false);
    let mut workers = spawn_workers(&config, &deps, stopped);
    let outcome = tokio::select! {
        done = &mut workers => done.map_err(|e| e.to_string()),
        signal = stop => {
            tracing::info!("stopping: no new jobs are fetched");
            let _ = stop_workers.send(true);
            wait_for_workers(&mut workers, &deps).await;
            signal.map_err(|e| e.to_string())
        }
    };
    reconciler.abort();
    if let Some(d) = deliveries {
        d.abort();
    }
    heartbeat.stop().await;
    if let Some(server) = metrics_server {
        server.stop(false).await;
    }
    if let Some(l) = listener {
        l.abort();
    }
    outcome.map_err(|e| StartupError::Io(std::io::Error::other(e)))
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r,
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await
    }
}

fn security_headers() -> DefaultHeaders {
    DefaultHeaders::new()
        .add((
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
             object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        ))
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("Referrer-Policy", "same-origin"))
        .add(("X-Frame-Options", "DENY"))
}
