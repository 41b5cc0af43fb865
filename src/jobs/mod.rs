//! Jobs: the row and its transitions ([`model`]), the queue ([`queue`]), the
//! group-committing writer of new jobs ([`submitter`]) and the worker ([`worker`]).

pub mod model;
pub mod queue;
pub mod submitter;
pub mod worker;
