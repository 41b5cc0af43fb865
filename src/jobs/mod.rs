//! Jobs: the row and its conditional transitions ([`model`]); the job store that owns every
//! change of a job's state together with its queue side effect, one implementation per
//! topology ([`store`]); the queues themselves ([`queue`]); the group commit of new jobs
//! ([`submitter`]), the compact storage of items ([`items`]) and pages of them for the results
//! page ([`browse`]), retention and deletion
//! ([`retention`]) and of a worker's claims and finishes on PostgreSQL ([`batch`]); the worker
//! ([`worker`]); the change signals of the event streams ([`events`]); and, for the operator
//! dashboard, the registry of live workers ([`registry`]) and the figures of the queues
//! ([`stats`]); the outbox of completion webhooks ([`webhooks`]); each client's fair share of
//! the workers ([`fair`]).

pub mod batch;
pub mod browse;
pub mod events;
pub mod fair;
pub mod idempotency;
pub mod items;
pub mod model;
pub mod parts;
pub mod queue;
pub mod registry;
pub mod retention;
pub mod stats;
pub mod store;
pub mod submitter;
pub mod webhooks;
pub mod worker;
