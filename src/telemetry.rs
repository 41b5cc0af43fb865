//! Logging: `tracing` events to stderr, filtered by `RUST_LOG` (default `info`).
//!
//! Human-readable lines by default; one JSON object per line with `RUST_LOG_FORMAT=json` (or
//! `LOG_FORMAT=json`). Every line logged while a request is handled carries its `request_id`
//! (see [`crate::web::request_log`]); every line about a job carries its `job_id`, in the web
//! process and the worker alike. Job ids, statuses and durations (`duration_ms`) are logged;
//! submitted texts, request bodies and secrets never are.

use tracing_subscriber::{EnvFilter, fmt};

/// Install the global subscriber once; later calls are ignored (tests start many apps).
/// `RUST_LOG_FORMAT=json` (or `LOG_FORMAT=json`) switches to one JSON object per line.
pub fn init() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,apalis=warn,apalis_core=warn"));
    let json = ["RUST_LOG_FORMAT", "LOG_FORMAT"]
        .iter()
        .any(|name| std::env::var(name).is_ok_and(|v| v.trim().eq_ignore_ascii_case("json")));
    let builder = fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
