//! Configuration from the environment, with defaults that need nothing installed.

use std::time::Duration;

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
    /// Jobs a worker runs at once, per queue.
    pub worker_concurrency: usize,
    /// Inputs at least this large go to the `bulk` queue, smaller ones to `quick`.
    pub bulk_threshold_bytes: usize,
    /// Whether `serve` runs the in-process worker (tests turn it off to keep jobs queued).
    pub run_worker: bool,
    /// Fallback poll interval of idle workers (pushes in the same process wake them at once).
    pub poll_interval: Duration,
    /// Queues a worker consumes.
    pub queues: Vec<String>,
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
            bulk_threshold_bytes: 1 << 20,
            run_worker: true,
            poll_interval: Duration::from_millis(100),
            queues: vec![QUICK.into(), BULK.into()],
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

impl Config {
    /// Read `PORT`, `HOST`, `DATABASE_URL`, `MAX_BODY_BYTES`, `WORKER_CONCURRENCY`,
    /// `BULK_THRESHOLD_BYTES`, `POLL_INTERVAL_MS` and `RUN_WORKER`.
    pub fn from_env() -> Result<Config, ConfigError> {
        let d = Config::default();
        let run_worker = match std::env::var("RUN_WORKER") {
            Ok(v) => !matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "0" | "false" | "no" | "off"
            ),
            Err(_) => true,
        };
        Ok(Config {
            host: std::env::var("HOST").unwrap_or(d.host),
            port: parsed("PORT", d.port)?,
            database_url: std::env::var("DATABASE_URL")
                .ok()
                .filter(|v| !v.trim().is_empty())
                .unwrap_or(d.database_url),
            max_body_bytes: parsed("MAX_BODY_BYTES", d.max_body_bytes)?,
            worker_concurrency: parsed("WORKER_CONCURRENCY", d.worker_concurrency)?.max(1),
            bulk_threshold_bytes: parsed("BULK_THRESHOLD_BYTES", d.bulk_threshold_bytes)?,
            run_worker,
            poll_interval: Duration::from_millis(parsed("POLL_INTERVAL_MS", 100u64)?.max(5)),
            queues: d.queues,
        })
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
    fn defaults_need_nothing() {
        let c = Config::default();
        assert_eq!(c.port, 8080);
        assert_eq!(c.database_url, "sqlite://sentiq.db?mode=rwc");
        assert_eq!(c.max_body_bytes, 64 << 20);
        assert_eq!(c.worker_concurrency, 2);
        assert_eq!(c.queues, ["quick", "bulk"]);
    }

    #[test]
    fn inputs_are_routed_by_size() {
        let c = Config::default();
        assert_eq!(c.queue_for(10), QUICK);
        assert_eq!(c.queue_for((1 << 20) - 1), QUICK);
        assert_eq!(c.queue_for(1 << 20), BULK);
    }
}
