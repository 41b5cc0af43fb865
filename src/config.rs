//! Configuration from the environment, with defaults that need nothing installed.

use std::time::Duration;

/// Default lease: how long a running job may go without any update before the reconciler hands
/// it to another worker (its worker is then presumed dead). Running jobs refresh it every
/// `lease / 4`. With the default reconcile interval a SIGKILLed worker's job is running again
/// elsewhere within lease + interval = 20 s.
pub const LEASE: Duration = Duration::from_secs(15);
/// Default interval of the reconciler.
pub const RECONCILE_EVERY: Duration = Duration::from_secs(5);
/// Default first retry delay after a transient error (then doubled per attempt, with jitter).
pub const RETRY_BASE: Duration = Duration::from_secs(1);
/// Default longest analysis of one run (`JOB_TIMEOUT`).
pub const JOB_TIMEOUT: Duration = Duration::from_secs(3600);

/// A value that must never be printed: its `Debug` says only that it is set, so a logged or
/// printed configuration never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value itself, for the one place that compares or signs with it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Lease, retry and time-out timing (shortened by tests through the environment).
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    pub lease: Duration,
    pub reconcile_every: Duration,
    pub retry_base: Duration,
    /// Longest a run may analyse before it is stopped and the job fails with code `timeout`
    /// (None: no limit).
    pub job_timeout: Option<Duration>,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            lease: LEASE,
            reconcile_every: RECONCILE_EVERY,
            retry_base: RETRY_BASE,
            job_timeout: Some(JOB_TIMEOUT),
        }
    }
}

/// Everything the web process and the worker need to start.
#[derive(Clone, Debug)]
pub struct Config {
    /// Address to bind (`0.0.0.0` by default).
    pub host: String,
    /// Port to bind; 0 picks a free port (tests).
    pub port: u16,
    /// sqlx SQLite URL, `sqlite://sentiq.db?mode=rwc` by default.
    pub database_url: String,
    /// Largest accepted request body in bytes.
    pub max_body_bytes: usize,
    /// Analyses a worker runs at once, per queue.
    pub worker_concurrency: usize,
    /// Most jobs of queue `quick` a worker holds at once with Redis: fetched, claimed, waiting
    /// for an analysis slot or for their writes (their claims and finishes are group-committed,
    /// so many in flight make few statements). Queue `bulk` holds `worker_concurrency`.
    pub worker_in_flight: usize,
    /// Inputs at least this large go to the `bulk` queue, smaller ones to `quick`.
    pub bulk_threshold_bytes: usize,
    /// Whether `serve` runs the in-process worker (tests turn it off to keep jobs queued).
    pub run_worker: bool,
    /// Fallback poll interval of idle workers (pushes in the same process wake them at once).
    pub poll_interval: Duration,
    /// Queues a worker consumes.
    pub queues: Vec<String>,
    /// `redis://` or `rediss://` URL of the production queue; None: the embedded SQLite queue.
    pub redis_url: Option<String>,
    /// Prefix of every Redis key and channel (several deployments can share one Redis).
    pub redis_namespace: String,
    /// Lease, reconcile interval and retry base delay.
    pub timing: Timing,
    /// Most PostgreSQL connections of this process.
    pub database_max_connections: u32,
    /// `sentiq worker` serves its `/metrics` on this port (None: it serves nothing).
    pub metrics_port: Option<u16>,
    /// The operator dashboard's token; None: `/admin` does not exist (404).
    pub admin_token: Option<Secret>,
    /// Submissions a client may make per minute (`POST /api/jobs`, `POST /analyses`); 0: no limit.
    pub submit_rate_per_minute: u32,
    /// Submissions a client may make at once before the per-minute rate applies.
    pub submit_burst: u32,
    /// Key clients by the last address of `X-Forwarded-For` (behind a router that appends the
    /// address it saw, as Heroku's does) instead of the connection's peer address.
    pub trust_forwarded_for: bool,
    /// HTTP worker threads of `serve` (`WEB_CONCURRENCY`, the variable Heroku's buildpacks use
    /// for a web process's concurrency); 0: one per CPU core.
    pub web_concurrency: usize,
}

pub const QUICK: &str = "quick";
pub const BULK: &str = "bulk";

impl Default for Config {
    fn default() -> Self {
        Config {
            host: "0.0.0.0".into(),
            port: 8080,
            database_url: "sqlite://sentiq.db?mode=rwc".into(),
            max_body_bytes: 64 << 20,
            worker_concurrency: 2,
            worker_in_flight: 512,
            bulk_threshold_bytes: 1 << 20,
            run_worker: true,
            poll_interval: Duration::from_millis(100),
            queues: vec![QUICK.into(), BULK.into()],
            redis_url: None,
            redis_namespace: "sentiq".into(),
            timing: Timing::default(),
            database_max_connections: 16,
            admin_token: None,
            metrics_port: None,
            submit_rate_per_minute: 600,
            submit_burst: 100,
            trust_forwarded_for: false,
            web_concurrency: 0,
        }
    }
}

/// A variable that is set but cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("environment variable {name}={value:?}: {reason}")]
pub struct ConfigError {
    pub name: &'static str,
    pub value: String,
    pub reason: String,
}

fn parsed<T: std::str::FromStr>(name: &'static str, default: T) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v.trim().parse().map_err(|e: T::Err| ConfigError {
            name,
            value: v,
            reason: e.to_string(),
        }),
        _ => Ok(default),
    }
}

fn millis(name: &'static str, default: Duration) -> Result<Duration, ConfigError> {
    Ok(Duration::from_millis(
        parsed(name, default.as_millis() as u64)?.max(1),
    ))
}

/// `JOB_TIMEOUT` in seconds (fractions allowed); `0` means no limit.
fn job_timeout(default: Option<Duration>) -> Result<Option<Duration>, ConfigError> {
    let secs: f64 = parsed("JOB_TIMEOUT", default.map_or(0.0, |t| t.as_secs_f64()))?;
    if secs == 0.0 {
        Ok(None)
    } else if secs > 0.0 && secs < 1e9 {
        Ok(Some(Duration::from_secs_f64(secs)))
    } else {
        Err(ConfigError {
            name: "JOB_TIMEOUT",
            value: secs.to_string(),
            reason: "seconds must be 0 (no limit) or a positive number".into(),
        })
    }
}

/// `quick,bulk` → the known queue names, in order, without repeats.
pub fn parse_queues(list: &str) -> Result<Vec<String>, String> {
    let mut queues: Vec<String> = Vec::new();
    for q in list.split(',').map(str::trim).filter(|q| !q.is_empty()) {
        if q != QUICK && q != BULK {
            return Err(format!("unknown queue {q:?}: use quick and/or bulk"));
        }
        if !queues.iter().any(|x| x == q) {
            queues.push(q.to_owned());
        }
    }
    if queues.is_empty() {
        return Err("no queue named: use quick and/or bulk".into());
    }
    Ok(queues)
}

/// A yes/no variable: `0`, `false`, `no`, `off` are no, `1`, `true`, `yes`, `on` are yes,
/// anything else (or unset) is `default`.
fn flag(name: &str, default: bool) -> bool {
    match std::env::var(name).map(|v| v.trim().to_ascii_lowercase()) {
        Ok(v) if matches!(v.as_str(), "0" | "false" | "no" | "off") => false,
        Ok(v) if matches!(v.as_str(), "1" | "true" | "yes" | "on") => true,
        _ => default,
    }
}

/// A `rediss://` URL whose server certificate is not verified (Heroku Redis presents a
/// self-signed one): the redis client's `#insecure` fragment. Other URLs are unchanged.
pub fn insecure_tls(url: String) -> String {
    if url.starts_with("rediss://") && !url.contains('#') {
        url + "#insecure"
    } else {
        url
    }
}

impl Config {
    /// Read `PORT`, `HOST`, `DATABASE_URL`, `DATABASE_MAX_CONNECTIONS`, `REDIS_URL`,
    /// `REDIS_NAMESPACE`, `MAX_BODY_BYTES`, `WORKER_CONCURRENCY`, `WORKER_IN_FLIGHT`, `WORKER_QUEUES`,
    /// `BULK_THRESHOLD_BYTES`, `POLL_INTERVAL_MS`, `RUN_WORKER`, `JOB_LEASE_MS`,
    /// `RECONCILE_INTERVAL_MS`, `RETRY_BASE_MS`, `REDIS_TLS_INSECURE`, `ADMIN_TOKEN`, `JOB_TIMEOUT`,
    /// `SUBMIT_RATE_PER_MINUTE`, `SUBMIT_BURST`, `TRUST_FORWARDED_FOR`, `WEB_CONCURRENCY` and
    /// `METRICS_PORT`.
    pub fn from_env() -> Result<Config, ConfigError> {
        let d = Config::default();
        let run_worker = flag("RUN_WORKER", true);
        Ok(Config {
            host: std::env::var("HOST").unwrap_or(d.host),
            port: parsed("PORT", d.port)?,
            database_url: std::env::var("DATABASE_URL")
                .ok()
                .filter(|v| !v.trim().is_empty())
                .unwrap_or(d.database_url),
            max_body_bytes: parsed("MAX_BODY_BYTES", d.max_body_bytes)?,
            worker_concurrency: parsed("WORKER_CONCURRENCY", d.worker_concurrency)?.max(1),
            worker_in_flight: parsed("WORKER_IN_FLIGHT", d.worker_in_flight)?.max(1),
            bulk_threshold_bytes: parsed("BULK_THRESHOLD_BYTES", d.bulk_threshold_bytes)?,
            run_worker,
            poll_interval: Duration::from_millis(parsed("POLL_INTERVAL_MS", 100u64)?.max(5)),
            queues: match std::env::var("WORKER_QUEUES") {
                Ok(v) if !v.trim().is_empty() => {
                    parse_queues(&v).map_err(|reason| ConfigError {
                        name: "WORKER_QUEUES",
                        value: v.clone(),
                        reason,
                    })?
                }
                _ => d.queues,
            },
            redis_url: std::env::var("REDIS_URL")
                .ok()
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
                .map(|v| {
                    if flag("REDIS_TLS_INSECURE", false) {
                        insecure_tls(v)
                    } else {
                        v
                    }
                }),
            redis_namespace: match std::env::var("REDIS_NAMESPACE") {
                Ok(v) if !v.trim().is_empty() => v.trim().to_owned(),
                _ => d.redis_namespace,
            },
            timing: Timing {
                lease: millis("JOB_LEASE_MS", d.timing.lease)?,
                reconcile_every: millis("RECONCILE_INTERVAL_MS", d.timing.reconcile_every)?,
                retry_base: millis("RETRY_BASE_MS", d.timing.retry_base)?,
                job_timeout: job_timeout(d.timing.job_timeout)?,
            },
            database_max_connections: parsed(
                "DATABASE_MAX_CONNECTIONS",
                d.database_max_connections,
            )?
            .max(2),
            metrics_port: match std::env::var("METRICS_PORT") {
                Ok(v) if !v.trim().is_empty() => Some(parsed("METRICS_PORT", 0u16)?),
                _ => None,
            },
            admin_token: std::env::var("ADMIN_TOKEN")
                .ok()
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
                .map(Secret),
            submit_rate_per_minute: parsed("SUBMIT_RATE_PER_MINUTE", d.submit_rate_per_minute)?,
            submit_burst: parsed("SUBMIT_BURST", d.submit_burst)?.max(1),
            trust_forwarded_for: flag("TRUST_FORWARDED_FOR", d.trust_forwarded_for),
            web_concurrency: parsed("WEB_CONCURRENCY", d.web_concurrency)?,
        })
    }

    /// Why this configuration cannot run, if it cannot: the embedded queue lives in the SQLite
    /// file, so PostgreSQL needs Redis; Redis URLs must be `redis://` or `rediss://`.
    pub fn check(&self) -> Result<(), String> {
        if let Some(url) = &self.redis_url
            && !(url.starts_with("redis://") || url.starts_with("rediss://"))
        {
            return Err(format!(
                "REDIS_URL must start with redis:// or rediss:// (got {})",
                crate::db::redact(url)
            ));
        }
        if self.redis_url.is_none() && crate::db::is_postgres_url(&self.database_url) {
            return Err(
                "DATABASE_URL names PostgreSQL but REDIS_URL is not set: the embedded \
                 queue lives in a SQLite database, so PostgreSQL needs the Redis queue \
                 (set REDIS_URL=redis://...)"
                    .into(),
            );
        }
        Ok(())
    }

    /// The queue a job of `input_bytes` goes to.
    pub fn queue_for(&self, input_bytes: usize) -> &'static str {
        if input_bytes >= self.bulk_threshold_bytes {
            BULK
        } else {
            QUICK
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insecure_tls_marks_only_tls_urls_without_a_fragment() {
        assert_eq!(
            insecure_tls("rediss://:pw@h:6380".into()),
            "rediss://:pw@h:6380#insecure"
        );
        assert_eq!(insecure_tls("redis://h:6379".into()), "redis://h:6379");
        assert_eq!(
            insecure_tls("rediss://h:6380#insecure".into()),
            "rediss://h:6380#insecure"
        );
    }

    #[test]
    fn the_admin_token_never_appears_in_debug_output() {
        let c = Config {
            admin_token: Some(Secret::new("hunter2-very-secret")),
            ..Config::default()
        };
        let printed = format!("{c:?} {c:#?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("Secret(***)"));
        assert_eq!(c.admin_token.unwrap().expose(), "hunter2-very-secret");
    }

    #[test]
    fn defaults_need_nothing() {
        let c = Config::default();
        assert_eq!(c.port, 8080);
        assert_eq!(c.database_url, "sqlite://sentiq.db?mode=rwc");
        assert_eq!(c.max_body_bytes, 64 << 20);
        assert_eq!(c.worker_concurrency, 2);
        assert_eq!(c.queues, ["quick", "bulk"]);
    }

    #[test]
    fn queue_lists_accept_known_names_only() {
        assert_eq!(parse_queues("bulk, quick,bulk").unwrap(), ["bulk", "quick"]);
        assert!(parse_queues("quick,slow").is_err());
        assert!(parse_queues(" , ").is_err());
    }

    #[test]
    fn postgres_without_redis_is_refused_with_a_reason() {
        let c = Config {
            database_url: "postgres://postgres@127.0.0.1/x".into(),
            ..Config::default()
        };
        assert!(c.check().unwrap_err().contains("REDIS_URL"));
        let c = Config {
            redis_url: Some("redis://127.0.0.1".into()),
            ..c
        };
        assert!(c.check().is_ok());
        assert!(Config::default().check().is_ok());
    }

    #[test]
    fn inputs_are_routed_by_size() {
        let c = Config::default();
        assert_eq!(c.queue_for(10), QUICK);
        assert_eq!(c.queue_for((1 << 20) - 1), QUICK);
        assert_eq!(c.queue_for(1 << 20), BULK);
    }
}
