//! Logging: `tracing` events to stderr, filtered by `RUST_LOG` (default `info`).
//!
//! Job ids, statuses and durations (`duration_ms`) are logged; submitted texts never are.

use tracing_subscriber::{EnvFilter, fmt};

/// Install the global subscriber once; later calls are ignored (tests start many apps).
/// `LOG_FORMAT=json` switches to one JSON object per line.
pub fn init() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,apalis=warn,apalis_core=warn"));
    let json = std::env::var("LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
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
