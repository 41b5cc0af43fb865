//! sentiq: sentiment analysis taken off the request path.
//!
//! - [`analysis`]: the VADER scorer and the document pipeline (pure, no I/O of its own).
//! - [`cli`]: the `sentiq` command line (`score`, `analyze`, `licenses`).

pub mod analysis;
pub mod cli;
