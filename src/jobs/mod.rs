//! Jobs: the row and its transitions ([`model`]), the queue ([`queue`]), the
//! group-committing writer of new jobs on SQLite ([`submitter`]), the worker ([`worker`]) and
//! the change signals of the event streams ([`events`]).

pub mod events;
pub mod model;
pub mod queue;
pub mod submitter;
pub mod worker;
