//! sentiq: sentiment analysis taken off the request path.
//!
//! - [`analysis`]: the VADER scorer and the document pipeline (pure, no I/O of its own).
//! - [`cli`]: the `sentiq` command line (`serve`, `worker`, `migrate`, `score`, `analyze`, `licenses`).
//! - [`config`], [`telemetry`], [`db`], [`startup`]: configuration, logging, database, wiring.
//! - [`deps`]: the services a process shares (the job store, running jobs, timing, metrics).
//! - [`keys`]: API keys (made, listed, revoked; checked on each request; usage).
//! - [`jobs`]: the job row, the job store, the queues and the worker; [`web`]: the HTTP API and
//!   the pages; [`webhooks`]: signed completion webhooks (checks of the URL, delivery).

pub mod analysis;
pub mod budget;
pub mod cli;
pub mod config;
pub mod db;
pub mod deps;
pub mod jobs;
pub mod keys;
pub mod metrics;
pub mod startup;
pub mod telemetry;
pub mod timestamp;
pub mod web;
pub mod webhooks;
