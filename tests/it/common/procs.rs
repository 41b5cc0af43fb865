//! Black-box process harness: the real `sentiq` binary as child processes, against real
//! PostgreSQL and Redis servers.
//!
//! - [`Scratch`]: the test's temporary directory; every process writes its stdout and stderr to
//!   a log file there. If the test panics, the tail of every log is printed and the logs are
//!   copied to `target/tmp/processes/<test>/` before the directory is removed (also when it
//!   passes, with `PROCS_KEEP_LOGS=1`).
//! - [`RedisServer`]: a throwaway `redis-server` on a free port (no persistence), which can be
//!   killed and restarted on the same port (it comes back empty).
//! - [`PgServer`]: a throwaway PostgreSQL cluster (`initdb` into a temporary directory, run as
//!   OS user `postgres` when the tests run as root), stopped with a fast shutdown and started
//!   again on the same port and data directory.
//! - [`FreshDatabase`] / [`Namespace`]: a fresh database on the machine's PostgreSQL
//!   (`TEST_DATABASE_URL`) and a fresh key namespace on the machine's Redis (`TEST_REDIS_URL`),
//!   dropped and deleted afterwards (the shared Redis is never flushed).
//! - [`Sentiq`]: a `sentiq serve` or `sentiq worker` child with signals and a timed wait.
//!
//! Every wrapper kills its process on drop, so nothing outlives a test, panicking or not.
#![allow(dead_code)]

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use redis::Commands;
use sqlx::{Connection, PgConnection};

/// The binary under test.
pub const SENTIQ: &str = env!("CARGO_BIN_EXE_sentiq");

/// The machine's PostgreSQL: a server and an existing database to connect to.
pub fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// The machine's Redis (shared: never flushed).
pub fn shared_redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A short random lowercase hex string.
pub fn random_hex(n: usize) -> String {
    uuid::Uuid::new_v4().simple().to_string()[..n].to_owned()
}

// ------------------------------------------------------------------------------------------
// Ports

/// A free TCP port on 127.0.0.1, never the same one twice in this test binary (a port handed
/// out earlier may still be about to be bound by the process it was given to).
pub fn free_port() -> u16 {
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
    let given = given.get_or_insert_with(HashSet::new);
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("bind a free port")
            .port();
        if given.insert(port) {
            return port;
        }
    }
}

/// Whether something accepts TCP connections on 127.0.0.1:`port`.
fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    )
    .is_ok()
}

/// Established TCP connections to 127.0.0.1:`port`, from the kernel's table (`/proc/net/tcp`,
/// Linux): `(accepted, waiting)`. A connection still in the listener's backlog has no socket
/// file until a process calls `accept`, so the table shows it with inode 0; that tells a
/// connection a server is handling from one the kernel merely completed the handshake of.
pub fn server_connections(port: u16) -> (usize, usize) {
    const ESTABLISHED: &str = "01";
    let local = format!("0100007F:{port:04X}");
    let table = std::fs::read_to_string("/proc/net/tcp").expect("read /proc/net/tcp");
    let (mut accepted, mut waiting) = (0, 0);
    for row in table.lines().skip(1) {
        let f: Vec<&str> = row.split_whitespace().collect();
        if f.len() < 10 || f[1] != local || f[3] != ESTABLISHED {
            continue;
        }
        if f[9] == "0" {
            waiting += 1;
        } else {
            accepted += 1;
        }
    }
    (accepted, waiting)
}

// ------------------------------------------------------------------------------------------
// Scratch directory and logs

/// The test's temporary directory, holding the process logs. Declare it first in a test, so it
/// is dropped last (after the processes that write into it).
pub struct Scratch {
    dir: Option<tempfile::TempDir>,
    test: String,
}

impl Scratch {
    pub fn new(test: &str) -> Scratch {
        let dir = tempfile::Builder::new()
            .prefix(&format!("sentiq-procs-{test}-"))
            .tempdir()
            .expect("temp dir");
        Scratch {
            dir: Some(dir),
            test: test.to_owned(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.as_ref().expect("scratch dir").path()
    }

    /// A log file path `<name>.log` in this directory.
    pub fn log(&self, name: &str) -> PathBuf {
        self.path().join(format!("{name}.log"))
    }

    /// A new sub-directory.
    pub fn subdir(&self, name: &str) -> PathBuf {
        let p = self.path().join(name);
        std::fs::create_dir_all(&p).expect("create a scratch sub-directory");
        p
    }

    fn logs(&self) -> Vec<PathBuf> {
        let mut logs: Vec<PathBuf> = std::fs::read_dir(self.path())
            .map(|it| {
                it.filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "log"))
                    .collect()
            })
            .unwrap_or_default();
        logs.sort();
        logs
    }
}

/// The last `n` lines of a file.
pub fn tail(path: &Path, n: usize) -> String {
    let Ok(f) = File::open(path) else {
        return String::new();
    };
    let lines: Vec<String> = BufReader::new(f).lines().map_while(Result::ok).collect();
    let skip = lines.len().saturating_sub(n);
    let mut out = String::new();
    if skip > 0 {
        out.push_str(&format!("[... {skip} earlier lines]\n"));
    }
    for l in &lines[skip..] {
        out.push_str(l);
        out.push('\n');
    }
    out
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let panicking = std::thread::panicking();
        if !panicking && std::env::var_os("PROCS_KEEP_LOGS").is_none() {
            return;
        }
        let keep = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("processes")
            .join(&self.test);
        let _ = std::fs::remove_dir_all(&keep);
        let _ = std::fs::create_dir_all(&keep);
        for log in self.logs() {
            let name = log.file_name().unwrap().to_string_lossy().into_owned();
            if panicking {
                eprintln!(
                    "\n===== {} (last 150 lines) =====\n{}",
                    name,
                    tail(&log, 150)
                );
            }
            let _ = std::fs::copy(&log, keep.join(&name));
        }
        eprintln!("===== logs kept in {} =====", keep.display());
    }
}

fn log_file(path: &Path) -> (Stdio, Stdio) {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open a log file");
    let g = f.try_clone().expect("clone a log file handle");
    (Stdio::from(f), Stdio::from(g))
}

/// Send `signal` (a name such as `TERM`, `INT`, `KILL`) to process `pid`.
pub fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{signal} {pid} failed");
}

/// Wait for `child` to exit, polling, for at most `within`.
async fn wait_child(child: &mut Child, within: Duration) -> Option<ExitStatus> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if start.elapsed() >= within {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Kill (SIGKILL) and reap a child, if it still runs.
fn kill_child(child: &mut Child) {
    if child.try_wait().ok().flatten().is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

// ------------------------------------------------------------------------------------------
// OS user for PostgreSQL

/// uid and gid of `user`, via `id`.
fn ids_of(user: &str) -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let out = Command::new("id")
            .arg(flag)
            .arg(user)
            .output()
            .expect("run id");
        assert!(out.status.success(), "no OS user {user}");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("a numeric id")
    };
    (id("-u"), id("-g"))
}

/// Whether this process runs as root (PostgreSQL refuses to run as root).
fn running_as_root() -> bool {
    let out = Command::new("id").arg("-u").output().expect("run id -u");
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

/// Run `cmd` as OS user `postgres` when we are root. (The switch happens in the child itself,
/// like `runuser -u postgres --` but without a `runuser` parent in between: our child is then
/// the postmaster, and our signals reach it directly; runuser would turn SIGINT into SIGTERM
/// and follow it with SIGKILL.)
fn as_postgres(cmd: &mut Command, owned: &[&Path]) {
    if running_as_root() {
        let (uid, gid) = ids_of("postgres");
        for p in owned {
            std::os::unix::fs::chown(p, Some(uid), Some(gid)).expect("chown to postgres");
        }
        cmd.uid(uid).gid(gid);
    }
}

/// The PostgreSQL server programs (`/usr/lib/postgresql/<newest>/bin`, or `PG_BIN`).
fn pg_bin() -> PathBuf {
    if let Ok(dir) = std::env::var("PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server programs in /usr/lib/postgresql (or set PG_BIN)")
        .filter_map(Result::ok)
        .filter_map(|e| {
            let v = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().expect("a PostgreSQL version installed").1
}

// ------------------------------------------------------------------------------------------
// Throwaway Redis

/// A `redis-server` of our own on a free port, without persistence.
pub struct RedisServer {
    pub port: u16,
    dir: tempfile::TempDir,
    log: PathBuf,
    child: Option<Child>,
}

impl RedisServer {
    pub async fn start(scratch: &Scratch) -> RedisServer {
        let mut server = RedisServer {
            port: free_port(),
            dir: tempfile::tempdir().expect("temp dir"),
            log: scratch.log("redis"),
            child: None,
        };
        server.spawn().await;
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn spawn(&mut self) {
        assert!(self.child.is_none(), "redis-server is already running");
        let (out, err) = log_file(&self.log);
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--daemonize", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start redis-server (is it installed?)");
        self.child = Some(child);
        self.wait_ready().await;
    }

    /// Until the server answers PING (at most 10 s).
    pub async fn wait_ready(&mut self) {
        let start = Instant::now();
        let client = redis::Client::open(self.url()).expect("redis url");
        loop {
            if let Ok(mut conn) = client.get_multiplexed_async_connection().await
                && let Ok(pong) = redis::cmd("PING").query_async::<String>(&mut conn).await
                && pong == "PONG"
            {
                return;
            }
            if let Some(c) = self.child.as_mut()
                && let Some(status) = c.try_wait().expect("try_wait")
            {
                panic!("redis-server exited ({status}):\n{}", tail(&self.log, 30));
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "redis-server did not answer PING within 10 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// kill -9 (it keeps nothing).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            kill_child(&mut c);
        }
    }

    /// Start again on the same port (empty).
    pub async fn restart(&mut self) {
        self.kill();
        // The port is free once the process is gone; a listener in TIME_WAIT does not block
        // redis (it sets SO_REUSEADDR).
        self.spawn().await;
    }

    /// FLUSHALL on this (throwaway) server.
    pub async fn flushall(&self) {
        let client = redis::Client::open(self.url()).expect("redis url");
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("connect to the throwaway redis");
        let _: () = redis::cmd("FLUSHALL")
            .query_async(&mut conn)
            .await
            .expect("FLUSHALL");
    }

    /// Number of keys (DBSIZE).
    pub async fn dbsize(&self) -> i64 {
        let client = redis::Client::open(self.url()).expect("redis url");
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("connect to the throwaway redis");
        redis::cmd("DBSIZE")
            .query_async(&mut conn)
            .await
            .expect("DBSIZE")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

// ------------------------------------------------------------------------------------------
// Throwaway PostgreSQL

/// A PostgreSQL cluster of our own, in a temporary directory, on a free port.
pub struct PgServer {
    pub port: u16,
    dir: tempfile::TempDir,
    data: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl PgServer {
    /// `initdb` (trust authentication, user `postgres`, no fsync) and start.
    pub async fn start(scratch: &Scratch) -> PgServer {
        let dir = tempfile::Builder::new()
            .prefix("sentiq-pg-")
            .tempdir()
            .expect("temp dir");
        let data = dir.path().join("data");
        let log = scratch.log("postgres");
        let (out, err) = log_file(&log);
        let mut initdb = Command::new(pg_bin().join("initdb"));
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"])
            .env("LC_ALL", "C")
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        as_postgres(&mut initdb, &[dir.path()]);
        let status = initdb.status().expect("run initdb");
        assert!(status.success(), "initdb failed:\n{}", tail(&log, 30));
        let mut server = PgServer {
            port: free_port(),
            dir,
            data,
            log,
            child: None,
        };
        server.start_again().await;
        server
    }

    /// A URL of database `db` on this server.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Start the server (again) on the same port and data directory; wait until it accepts
    /// connections (at most 30 s).
    pub async fn start_again(&mut self) {
        assert!(self.child.is_none(), "postgres is already running");
        let (out, err) = log_file(&self.log);
        let mut cmd = Command::new(pg_bin().join("postgres"));
        cmd.arg("-D")
            .arg(&self.data)
            .args(["-p", &self.port.to_string()])
            .arg("-k")
            .arg(self.dir.path())
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args(["-c", "fsync=off"])
            .args(["-c", "synchronous_commit=off"])
            .args(["-c", "full_page_writes=off"])
            .args(["-c", "max_connections=200"])
            .env("LC_ALL", "C")
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        as_postgres(&mut cmd, &[]);
        self.child = Some(cmd.spawn().expect("start postgres"));
        let start = Instant::now();
        loop {
            if let Ok(c) = PgConnection::connect(&self.url("postgres")).await {
                let _ = c.close().await;
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().expect("try_wait") {
                self.child = None;
                panic!("postgres exited ({status}):\n{}", tail(&self.log, 40));
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "postgres did not accept connections within 30 s:\n{}",
                tail(&self.log, 40)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Fast shutdown (SIGINT: clients are disconnected, open transactions rolled back), and
    /// wait until it has exited and the port is closed (at most 30 s).
    pub async fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        signal(child.id(), "INT");
        let status = wait_child(&mut child, Duration::from_secs(30)).await;
        if status.is_none() {
            kill_child(&mut child);
            panic!("postgres did not stop within 30 s of SIGINT");
        }
        let start = Instant::now();
        while port_open(self.port) && start.elapsed() < Duration::from_secs(5) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Immediate shutdown (SIGQUIT) lets the postmaster stop its own children; SIGKILL
            // only if it does not.
            let _ = Command::new("kill")
                .arg("-QUIT")
                .arg(child.id().to_string())
                .status();
            let start = Instant::now();
            while child.try_wait().ok().flatten().is_none() {
                if start.elapsed() > Duration::from_secs(10) {
                    kill_child(&mut child);
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

// ------------------------------------------------------------------------------------------
// Fresh database and namespace on the machine's servers

/// `url` with its database replaced by `name`.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b.to_owned(), format!("?{q}")),
        None => (url.to_owned(), String::new()),
    };
    let cut = base.rfind('/').expect("a database URL has a path");
    format!("{}/{name}{query}", &base[..cut])
}

/// A fresh database `sentiq_p_<hex>` on the machine's PostgreSQL, dropped on drop.
pub struct FreshDatabase {
    pub name: String,
    pub url: String,
    admin: String,
}

impl FreshDatabase {
    pub async fn create() -> FreshDatabase {
        let admin = admin_url();
        let name = format!("sentiq_p_{}", random_hex(16));
        let mut conn = PgConnection::connect(&admin)
            .await
            .expect("the machine's PostgreSQL is up (TEST_DATABASE_URL)");
        // The name is ours: `sentiq_p_` and hex digits.
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .expect("create the test database");
        let _ = conn.close().await;
        FreshDatabase {
            url: with_database(&admin, &name),
            name,
            admin,
        }
    }
}

impl Drop for FreshDatabase {
    fn drop(&mut self) {
        let admin = self.admin.clone();
        let name = self.name.clone();
        // The test's runtime may be gone or busy: drop from a thread with its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                if let Ok(mut conn) = PgConnection::connect(&admin).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut conn)
                    .await;
                    let _ = conn.close().await;
                }
            });
        })
        .join();
    }
}

/// A fresh key namespace `sentiq_p_<hex>` on a Redis server; its keys (and its entries in
/// apalis's global queue list) are deleted on drop. Never flushes the server.
pub struct Namespace {
    pub name: String,
    pub redis_url: String,
}

impl Namespace {
    pub fn new(redis_url: &str) -> Namespace {
        Namespace {
            name: format!("sentiq_p_{}", random_hex(12)),
            redis_url: redis_url.to_owned(),
        }
    }

    /// Delete the namespace's keys now (synchronous client: usable from Drop).
    pub fn delete_keys(&self) -> redis::RedisResult<usize> {
        let client = redis::Client::open(self.redis_url.as_str())?;
        let mut conn = client.get_connection_with_timeout(Duration::from_secs(5))?;
        let pattern = format!("{}:*", self.name);
        let keys: Vec<String> = conn
            .scan_match::<_, String>(&pattern)?
            .collect::<Result<_, _>>()?;
        let mut removed = 0;
        for chunk in keys.chunks(500) {
            removed += redis::cmd("DEL").arg(chunk).query::<usize>(&mut conn)?;
        }
        let queues: Vec<String> = redis::cmd("ZRANGE")
            .arg("core:apalis:queues:list")
            .arg(0)
            .arg(-1)
            .query(&mut conn)?;
        for q in queues
            .iter()
            .filter(|q| q.starts_with(&format!("{}:", self.name)))
        {
            let _: i64 = redis::cmd("ZREM")
                .arg("core:apalis:queues:list")
                .arg(q)
                .query(&mut conn)?;
        }
        Ok(removed)
    }

    /// Number of keys of the namespace.
    pub fn key_count(&self) -> redis::RedisResult<usize> {
        let client = redis::Client::open(self.redis_url.as_str())?;
        let mut conn = client.get_connection_with_timeout(Duration::from_secs(5))?;
        let pattern = format!("{}:*", self.name);
        Ok(conn.scan_match::<_, String>(&pattern)?.count())
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        if let Err(e) = self.delete_keys() {
            eprintln!("could not delete the keys of namespace {}: {e}", self.name);
        }
    }
}

// ------------------------------------------------------------------------------------------
// sentiq processes

/// Variables of the configuration; removed from every child's environment unless set by the
/// test, so the machine's environment cannot change a test.
const CONFIG_VARS: &[&str] = &[
    "PORT",
    "HOST",
    "DATABASE_URL",
    "DATABASE_MAX_CONNECTIONS",
    "REDIS_URL",
    "REDIS_NAMESPACE",
    "MAX_BODY_BYTES",
    "BULK_THRESHOLD_BYTES",
    "WORKER_QUEUES",
    "WORKER_CONCURRENCY",
    "POLL_INTERVAL_MS",
    "JOB_LEASE_MS",
    "RECONCILE_INTERVAL_MS",
    "RETRY_BASE_MS",
    "RUN_WORKER",
    "RUST_LOG",
    "LOG_FORMAT",
    "RUST_LOG_FORMAT",
    "SENTIQ_THREADS",
    "ADMIN_TOKEN",
    "API_KEYS",
    "PUBLIC_FORM",
    "JOB_TIMEOUT",
    "SUBMIT_RATE_PER_MINUTE",
    "SUBMIT_BURST",
    "MAX_WAITERS",
    "TRUST_FORWARDED_FOR",
    "PUBLIC_URL",
    "WEBHOOK_SECRET",
    "WEBHOOK_ALLOW_PRIVATE",
    "WEBHOOK_RETRY_SCHEDULE",
    "WEBHOOK_TIMEOUT",
];

/// A set of environment variables for `sentiq` children.
#[derive(Clone, Debug, Default)]
pub struct Env(Vec<(String, String)>);

impl Env {
    /// No variables but `SUBMIT_RATE_PER_MINUTE=0`: the tests submit faster than one client may.
    pub fn new() -> Env {
        Env::default().set("SUBMIT_RATE_PER_MINUTE", 0)
    }

    /// Set (or replace) a variable.
    pub fn set(mut self, name: &str, value: impl ToString) -> Env {
        self.0.retain(|(n, _)| n != name);
        self.0.push((name.to_owned(), value.to_string()));
        self
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Run `sentiq migrate` with `env` (its output in `migrate.log`); asserts success.
pub fn migrate(scratch: &Scratch, env: &Env) {
    let log = scratch.log("migrate");
    let (out, err) = log_file(&log);
    let mut cmd = Command::new(SENTIQ);
    cmd.arg("migrate")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    for v in CONFIG_VARS {
        cmd.env_remove(v);
    }
    for (n, v) in &env.0 {
        cmd.env(n, v);
    }
    let status = cmd.status().expect("run sentiq migrate");
    assert!(
        status.success(),
        "sentiq migrate failed ({status}):\n{}",
        tail(&log, 30)
    );
}

/// A `sentiq` child process (serve or worker); killed (SIGKILL) on drop if still running.
pub struct Sentiq {
    pub name: String,
    /// HTTP port (`serve` only).
    pub port: Option<u16>,
    log: PathBuf,
    child: Child,
    exited: Option<ExitStatus>,
}

impl Sentiq {
    /// Start `sentiq <args>` with `env`, logging to `<name>.log`.
    pub fn spawn(scratch: &Scratch, name: &str, args: &[&str], env: &Env) -> Sentiq {
        let log = scratch.log(name);
        let (out, err) = log_file(&log);
        let mut cmd = Command::new(SENTIQ);
        cmd.args(args).stdin(Stdio::null()).stdout(out).stderr(err);
        for v in CONFIG_VARS {
            cmd.env_remove(v);
        }
        for (n, v) in &env.0 {
            cmd.env(n, v);
        }
        let child = cmd.spawn().expect("start sentiq");
        let port = env.get("PORT").and_then(|p| p.parse().ok());
        Sentiq {
            name: name.to_owned(),
            port,
            log,
            child,
            exited: None,
        }
    }

    /// `sentiq serve` on a free port of 127.0.0.1; returns once `/healthz` answers 200
    /// (at most 30 s).
    pub async fn serve(scratch: &Scratch, name: &str, env: &Env) -> Sentiq {
        let port = free_port();
        let env = env.clone().set("PORT", port).set("HOST", "127.0.0.1");
        let mut p = Sentiq::spawn(scratch, name, &["serve"], &env);
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("client");
        let start = Instant::now();
        loop {
            if let Ok(r) = client.get(p.url("/healthz")).send().await
                && r.status() == 200
            {
                return p;
            }
            if let Some(status) = p.try_exit() {
                panic!("{name} exited at start ({status}):\n{}", p.log_tail(40));
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "{name} did not answer /healthz within 30 s:\n{}",
                p.log_tail(40)
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// `sentiq worker <args>`; returns once it has logged "worker started" (at most 30 s).
    pub async fn worker(scratch: &Scratch, name: &str, args: &[&str], env: &Env) -> Sentiq {
        let mut all = vec!["worker"];
        all.extend_from_slice(args);
        let mut p = Sentiq::spawn(scratch, name, &all, env);
        p.wait_for_log("worker started", Duration::from_secs(30))
            .await;
        p
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `http://127.0.0.1:<port><path>` (`serve` only).
    pub fn url(&self, path: &str) -> String {
        format!(
            "http://127.0.0.1:{}{path}",
            self.port.expect("a serve process has a port")
        )
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The whole log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn log_tail(&self, n: usize) -> String {
        tail(&self.log, n)
    }

    /// Until the log contains `needle` (panics after `within`, or if the process exits).
    pub async fn wait_for_log(&mut self, needle: &str, within: Duration) {
        let start = Instant::now();
        loop {
            if self.log_text().contains(needle) {
                return;
            }
            if let Some(status) = self.try_exit() {
                panic!(
                    "{} exited ({status}) before logging {needle:?}:\n{}",
                    self.name,
                    self.log_tail(40)
                );
            }
            assert!(
                start.elapsed() < within,
                "{} did not log {needle:?} within {within:?}:\n{}",
                self.name,
                self.log_tail(40)
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The exit status, if it has exited.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().expect("try_wait");
        }
        self.exited
    }

    pub fn is_running(&mut self) -> bool {
        self.try_exit().is_none()
    }

    /// Send SIGTERM (a graceful stop).
    pub fn sigterm(&mut self) {
        if self.is_running() {
            signal(self.pid(), "TERM");
        }
    }

    /// kill -9 and reap.
    pub fn sigkill(&mut self) {
        if self.is_running() {
            signal(self.pid(), "KILL");
            self.exited = Some(self.child.wait().expect("wait"));
        }
    }

    /// Wait for the exit, at most `within`: its status, or None if it is still running.
    pub async fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        if let Some(s) = self.exited {
            return Some(s);
        }
        self.exited = wait_child(&mut self.child, within).await;
        self.exited
    }
}

impl Drop for Sentiq {
    fn drop(&mut self) {
        if self.exited.is_none() {
            kill_child(&mut self.child);
        }
    }
}
