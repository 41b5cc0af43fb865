//! Jobs: the row and its transitions ([`model`]), the queue ([`queue`]), the
//! group-committing writer of new jobs on SQLite ([`submitter`]), the worker ([`worker`]) and
//! the change signals of the event streams ([`events`]), and the group commit of the
//! worker's claims and finishes on PostgreSQL ([`batch`]); for the operator dashboard, the
//! registry of live workers ([`workers`]) and the figures of the queues ([`stats`]).

pub mod batch;
pub mod events;
pub mod model;
pub mod queue;
pub mod stats;
pub mod submitter;
pub mod worker;
pub mod workers;
