//! The integration tests, in one binary so a fresh build links the test code once.
//!
//! Each module is one area; `common` holds the app helpers of both topologies (an in-process
//! app on SQLite, the production topology on PostgreSQL + Redis, and real processes).

mod common;

mod admin;
mod analyst;
mod api;
mod bad_inputs;
mod browser;
mod cli;
mod fair_share;
mod idempotency;
mod keys;
mod memory;
mod overload;
mod pages;
mod parity;
mod parsers_never_panic;
mod processes;
mod production;
mod recovery;
mod retention;
mod schemathesis;
mod server_cli;
mod wait;
mod webhooks;
