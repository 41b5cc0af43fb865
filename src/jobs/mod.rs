//! Jobs: the row and its transitions ([`model`]), the queue ([`queue`]) and the worker ([`worker`]).

pub mod model;
pub mod queue;
pub mod worker;
