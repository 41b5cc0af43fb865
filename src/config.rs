//! Configuration of `serve`, `worker` and `migrate`: environment variables (or the matching
//! command-line options, see [`crate::cli`]) read into [`Config`], one section per concern.
//!
//! [`SECTIONS`] lists every variable once, with its option, default and one line of help:
//! `--help` is generated from it and [`Config::from_lookup`] reads through it, so a variable
//! cannot be documented by one and read differently by the other. The rules every variable
//! shares live in `Reader`: values are trimmed, a blank one counts as unset, and a value that
//! cannot be used is a [`ConfigError`] naming the variable and the value.

use std::time::Duration;

use crate::jobs::queue::QueueName;

/// One setting: an environment variable and the long option that can stand in for it.
#[derive(Debug)]
pub struct Var {
    /// The environment variable (also the option's id in clap).
    pub name: &'static str,
    /// The long option of the service commands, without `--`.
    pub flag: &'static str,
    /// The text an unset or blank variable stands for; None: unset means none (or off).
    pub default: Option<&'static str>,
    /// What kind of value it takes, as `--help` shows it: `<N>`, `<MS>`, `<BOOL>`...
    pub value_name: &'static str,
    /// One line for `--help`.
    pub help: &'static str,
}

/// The variables of one section of [`Config`], under one heading of `--help`.
#[derive(Debug)]
pub struct Section {
    pub heading: &'static str,
    pub vars: &'static [&'static Var],
}

pub const HOST: Var = Var {
    name: "HOST",
    flag: "host",
    default: Some("0.0.0.0"),
    value_name: "ADDRESS",
    help: "Address to bind (the web server, and a worker's /metrics)",
};
pub const PORT: Var = Var {
    name: "PORT",
    flag: "port",
    default: Some("8080"),
    value_name: "PORT",
    help: "HTTP port; 0 picks a free one",
};
pub const MAX_BODY_BYTES: Var = Var {
    name: "MAX_BODY_BYTES",
    flag: "max-body-bytes",
    default: Some("67108864"),
    value_name: "BYTES",
    help: "Largest accepted submission (64 MiB); larger gets 413",
};
pub const MEMORY_BUDGET_MB: Var = Var {
    name: "MEMORY_BUDGET_MB",
    flag: "memory-budget-mb",
    default: Some("256"),
    value_name: "MIB",
    help: "Memory a process gives to data in flight: half to request bodies held at once \
         (past it a submission waits up to 3 s, then gets 503 overloaded with Retry-After), \
         half to the analyses of its worker (a large run waits for its share); uploads over \
         1 MiB are written a part at a time",
};
pub const MAX_CONNECTIONS: Var = Var {
    name: "MAX_CONNECTIONS",
    flag: "max-connections",
    default: Some("4096"),
    value_name: "N",
    help: "Client connections serve keeps open at once; more wait in the listen backlog until \
         one closes (idle ones close after 30 s)",
};
pub const MAX_SUBMISSIONS_IN_FLIGHT: Var = Var {
    name: "MAX_SUBMISSIONS_IN_FLIGHT",
    flag: "max-submissions-in-flight",
    default: Some("64"),
    value_name: "N",
    help: "Submissions serve works on at once; past it one is answered 503 overloaded with \
         Retry-After at once, so the ones taken keep a short answer time under any load",
};
pub const WEB_CONCURRENCY: Var = Var {
    name: "WEB_CONCURRENCY",
    flag: "web-concurrency",
    default: Some("0"),
    value_name: "N",
    help: "Threads of serve that handle HTTP; 0: one per CPU core",
};
pub const TRUST_FORWARDED_FOR: Var = Var {
    name: "TRUST_FORWARDED_FOR",
    flag: "trust-forwarded-for",
    default: Some("false"),
    value_name: "BOOL",
    help: "Tell clients apart by the last X-Forwarded-For address \
         (behind a router that appends it)",
};

pub const DATABASE_URL: Var = Var {
    name: "DATABASE_URL",
    flag: "database-url",
    default: Some("sqlite://sentiq.db?mode=rwc"),
    value_name: "URL",
    help: "sqlite://... (a file) or postgres://... / postgresql://...",
};
pub const DATABASE_MAX_CONNECTIONS: Var = Var {
    name: "DATABASE_MAX_CONNECTIONS",
    flag: "database-max-connections",
    default: None,
    value_name: "N",
    help: "Most PostgreSQL connections of this process, at least 2; unset: 16 for serve, what \
         its concurrency needs for a worker (10 by default). Size every process's so that \
         their sum fits the plan (e.g. 4 for 2 serve + 2 worker on 20 connections)",
};

pub const REDIS_URL: Var = Var {
    name: "REDIS_URL",
    flag: "redis-url",
    default: None,
    value_name: "URL",
    help: "redis://... or rediss://... (TLS): the Redis queue, and serve is web only; \
         unset: the embedded queue in the SQLite file",
};
pub const REDIS_TLS_INSECURE: Var = Var {
    name: "REDIS_TLS_INSECURE",
    flag: "redis-tls-insecure",
    default: Some("false"),
    value_name: "BOOL",
    help: "Do not verify the certificate of a rediss:// server \
         (Heroku Redis presents a self-signed one)",
};
pub const REDIS_NAMESPACE: Var = Var {
    name: "REDIS_NAMESPACE",
    flag: "redis-namespace",
    default: Some("sentiq"),
    value_name: "PREFIX",
    help: "Prefix of every Redis key and channel, so deployments can share one Redis",
};
pub const BULK_THRESHOLD_BYTES: Var = Var {
    name: "BULK_THRESHOLD_BYTES",
    flag: "bulk-threshold-bytes",
    default: Some("1048576"),
    value_name: "BYTES",
    help: "Inputs this large go to queue bulk, smaller ones to quick",
};
pub const POLL_INTERVAL_MS: Var = Var {
    name: "POLL_INTERVAL_MS",
    flag: "poll-interval-ms",
    default: Some("100"),
    value_name: "MS",
    help: "Fallback poll of idle workers, at least 5 (pushes wake them at once)",
};

pub const RUN_WORKER: Var = Var {
    name: "RUN_WORKER",
    flag: "run-worker",
    default: Some("true"),
    value_name: "BOOL",
    help: "false: serve is web only with the embedded queue (run sentiq worker beside it)",
};
pub const WORKER_QUEUES: Var = Var {
    name: "WORKER_QUEUES",
    flag: "queues",
    default: Some("quick,bulk"),
    value_name: "QUEUES",
    help: "Queues a worker consumes, comma-separated: quick and/or bulk",
};
pub const WORKER_CONCURRENCY: Var = Var {
    name: "WORKER_CONCURRENCY",
    flag: "concurrency",
    default: Some("2"),
    value_name: "N",
    help: "Analyses run at once per queue",
};
pub const WORKER_IN_FLIGHT: Var = Var {
    name: "WORKER_IN_FLIGHT",
    flag: "in-flight",
    default: Some("512"),
    value_name: "N",
    help: "With Redis, most jobs of queue quick a worker holds at once: claimed, or waiting for an \
         analysis slot or for their writes",
};
pub const METRICS_PORT: Var = Var {
    name: "METRICS_PORT",
    flag: "metrics-port",
    default: None,
    value_name: "PORT",
    help: "sentiq worker serves its own /metrics on this port",
};
pub const JOB_LEASE_MS: Var = Var {
    name: "JOB_LEASE_MS",
    flag: "job-lease-ms",
    default: Some("15000"),
    value_name: "MS",
    help: "A running job not refreshed for this long is presumed dead and re-enqueued",
};
pub const RECONCILE_INTERVAL_MS: Var = Var {
    name: "RECONCILE_INTERVAL_MS",
    flag: "reconcile-interval-ms",
    default: Some("5000"),
    value_name: "MS",
    help: "How often a worker looks for stale jobs and lost queue entries",
};
pub const RETRY_BASE_MS: Var = Var {
    name: "RETRY_BASE_MS",
    flag: "retry-base-ms",
    default: Some("1000"),
    value_name: "MS",
    help: "First retry delay after a transient error; doubled per attempt, with jitter",
};
pub const JOB_TIMEOUT: Var = Var {
    name: "JOB_TIMEOUT",
    flag: "job-timeout",
    default: Some("3600"),
    value_name: "SECONDS",
    help: "Seconds a run may analyse (fractions allowed) before it fails with code timeout; \
         0: no limit",
};

pub const SUBMIT_RATE_PER_MINUTE: Var = Var {
    name: "SUBMIT_RATE_PER_MINUTE",
    flag: "submit-rate-per-minute",
    default: Some("600"),
    value_name: "N",
    help: "Submissions a client may make per minute, per web process; 0: no limit",
};
pub const SUBMIT_BURST: Var = Var {
    name: "SUBMIT_BURST",
    flag: "submit-burst",
    default: Some("100"),
    value_name: "N",
    help: "Submissions a client may make at once before the per-minute rate applies",
};

pub const IDEMPOTENCY_TTL: Var = Var {
    name: "IDEMPOTENCY_TTL",
    flag: "idempotency-ttl",
    default: Some("86400"),
    value_name: "SECONDS",
    help: "Seconds a submission's Idempotency-Key (or the form's token) gives the first answer \
         again",
};
pub const MAX_EVENT_STREAMS: Var = Var {
    name: "MAX_EVENT_STREAMS",
    flag: "max-event-streams",
    default: Some("2000"),
    value_name: "N",
    help: "Event streams (GET /api/jobs/{id}/events) open at once per web process; past it a \
         stream gets 503 too_many_streams and the page polls instead",
};
pub const MAX_WAITERS: Var = Var {
    name: "MAX_WAITERS",
    flag: "max-waiters",
    default: Some("10000"),
    value_name: "N",
    help: "Requests that may wait at once (Prefer: wait) per web process; past it a long-poll \
         gets 503 and a submission answers 202 at once",
};

pub const PUBLIC_URL: Var = Var {
    name: "PUBLIC_URL",
    flag: "public-url",
    default: None,
    value_name: "URL",
    help: "Where clients reach this service (https://host): webhook events link the job with it; \
         unset: they give the path /api/jobs/{id}",
};

pub const WEBHOOK_SECRET: Var = Var {
    name: "WEBHOOK_SECRET",
    flag: "webhook-secret",
    default: None,
    value_name: "SECRET",
    help: "whsec_ and the base64 of a 24 to 64-byte key: signs webhook events (prefer the \
         variable: options show in ps); unset: submissions with a webhook_url are refused",
};
pub const WEBHOOK_ALLOW_PRIVATE: Var = Var {
    name: "WEBHOOK_ALLOW_PRIVATE",
    flag: "webhook-allow-private",
    default: Some("false"),
    value_name: "BOOL",
    help: "Send webhooks to loopback, private and link-local addresses too (tests, private \
         networks)",
};
pub const WEBHOOK_RETRY_SCHEDULE: Var = Var {
    name: "WEBHOOK_RETRY_SCHEDULE",
    flag: "webhook-retry-schedule",
    default: Some("5s,5m,30m,2h,5h,10h,10h"),
    value_name: "DURATIONS",
    help: "Delays before each retry of a failed webhook delivery (ms, s, m, h, d), with +/-20 % \
         jitter; after the last the delivery fails",
};
pub const WEBHOOK_TIMEOUT: Var = Var {
    name: "WEBHOOK_TIMEOUT",
    flag: "webhook-timeout",
    default: Some("10"),
    value_name: "SECONDS",
    help: "Seconds a webhook receiver has to answer (fractions allowed); an attempt is leased \
         for three times as long",
};

pub const RESULT_TTL: Var = Var {
    name: "RESULT_TTL",
    flag: "result-ttl",
    default: Some("604800"),
    value_name: "SECONDS",
    help: "Seconds a final job's input, items and report are kept (7 days); then it answers \
         410 Gone. 0: kept forever",
};
pub const TOMBSTONE_TTL: Var = Var {
    name: "TOMBSTONE_TTL",
    flag: "tombstone-ttl",
    default: Some("2592000"),
    value_name: "SECONDS",
    help: "Seconds an expired or deleted job still answers 410 Gone (30 days); then 404",
};
pub const PRUNE_INTERVAL_MS: Var = Var {
    name: "PRUNE_INTERVAL_MS",
    flag: "prune-interval-ms",
    default: Some("10000"),
    value_name: "MS",
    help: "How often a worker removes expired data and old tombstones",
};

pub const ADMIN_TOKEN: Var = Var {
    name: "ADMIN_TOKEN",
    flag: "admin-token",
    default: None,
    value_name: "TOKEN",
    help: "Password of the operator dashboard at /admin (prefer the variable: options show in ps); \
         unset: /admin answers 404",
};

pub const API_KEYS: Var = Var {
    name: "API_KEYS",
    flag: "api-keys",
    default: Some("optional"),
    value_name: "MODE",
    help: "off: the JSON API ignores Authorization; optional: anonymous requests work, a key \
         sent must be valid; required: every /api/ route but health, readiness, metrics and \
         the OpenAPI document needs a valid key",
};
pub const PUBLIC_FORM: Var = Var {
    name: "PUBLIC_FORM",
    flag: "public-form",
    default: Some("true"),
    value_name: "BOOL",
    help: "false: the browser form (GET / and POST /analyses) answers 404 and only the JSON API \
         takes submissions",
};

/// Every variable [`Config::from_lookup`] reads, by section, in the order `--help` lists them.
pub const SECTIONS: &[Section] = &[
    Section {
        heading: "HTTP",
        vars: &[
            &HOST,
            &PORT,
            &MAX_BODY_BYTES,
            &MEMORY_BUDGET_MB,
            &MAX_CONNECTIONS,
            &MAX_SUBMISSIONS_IN_FLIGHT,
            &WEB_CONCURRENCY,
            &TRUST_FORWARDED_FOR,
            &PUBLIC_URL,
        ],
    },
    Section {
        heading: "Database",
        vars: &[&DATABASE_URL, &DATABASE_MAX_CONNECTIONS],
    },
    Section {
        heading: "Queue",
        vars: &[
            &REDIS_URL,
            &REDIS_TLS_INSECURE,
            &REDIS_NAMESPACE,
            &BULK_THRESHOLD_BYTES,
            &POLL_INTERVAL_MS,
        ],
    },
    Section {
        heading: "Worker",
        vars: &[
            &RUN_WORKER,
            &WORKER_QUEUES,
            &WORKER_CONCURRENCY,
            &WORKER_IN_FLIGHT,
            &METRICS_PORT,
            &JOB_LEASE_MS,
            &RECONCILE_INTERVAL_MS,
            &RETRY_BASE_MS,
            &JOB_TIMEOUT,
        ],
    },
    Section {
        heading: "Limits",
        vars: &[
            &SUBMIT_RATE_PER_MINUTE,
            &SUBMIT_BURST,
            &IDEMPOTENCY_TTL,
            &MAX_WAITERS,
            &MAX_EVENT_STREAMS,
        ],
    },
    Section {
        heading: "Retention",
        vars: &[&RESULT_TTL, &TOMBSTONE_TTL, &PRUNE_INTERVAL_MS],
    },
    Section {
        heading: "Security",
        vars: &[&ADMIN_TOKEN],
    },
    Section {
        heading: "Clients",
        vars: &[&API_KEYS, &PUBLIC_FORM],
    },
    Section {
        heading: "Webhooks",
        vars: &[
            &WEBHOOK_SECRET,
            &WEBHOOK_ALLOW_PRIVATE,
            &WEBHOOK_RETRY_SCHEDULE,
            &WEBHOOK_TIMEOUT,
        ],
    },
];

/// Every variable of [`SECTIONS`].
pub fn vars() -> impl Iterator<Item = &'static Var> {
    SECTIONS.iter().flat_map(|s| s.vars.iter().copied())
}

/// How the service commands read values, for `--help` (after the list of options).
pub const VALUE_NOTES: &str = "\
Every option can be set by its environment variable instead; an option wins over its variable. \
A blank variable counts as unset. BOOL: 1, true, yes or on; 0, false, no or off (any other value \
is the default).

Logging: RUST_LOG filters the log lines [default: info]; RUST_LOG_FORMAT=json (or LOG_FORMAT=json) \
writes one JSON object per line.";

/// A value that must never be printed: its `Debug` says only that it is set, so a logged or
/// printed configuration never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value itself, for the one place that compares or signs with it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Everything the web process and the worker need to start.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub http: HttpConfig,
    pub database: DatabaseConfig,
    pub queue: QueueConfig,
    pub worker: WorkerConfig,
    pub limits: LimitsConfig,
    pub retention: Retention,
    pub security: SecurityConfig,
    pub clients: ClientsConfig,
    pub webhooks: WebhookConfig,
}

/// The web server.
#[derive(Clone, Debug, PartialEq)]
pub struct HttpConfig {
    /// Address to bind (`0.0.0.0` by default).
    pub host: String,
    /// Port to bind; 0 picks a free port (tests).
    pub port: u16,
    /// Largest accepted request body in bytes.
    pub max_body_bytes: usize,
    /// Bytes of data in flight a process may hold (`MEMORY_BUDGET_MB`): half for request bodies
    /// ([`crate::web::upload::Budget`]), half for its worker's analyses
    /// ([`crate::deps::Deps::analysis_memory`]).
    pub memory_budget_bytes: usize,
    /// Client connections `serve` keeps open at once (`MAX_CONNECTIONS`), shared among its HTTP
    /// threads: each costs buffers whether or not it sends anything.
    pub max_connections: usize,
    /// Submissions one process works on at once (`MAX_SUBMISSIONS_IN_FLIGHT`); past it, 503.
    pub max_submissions_in_flight: usize,
    /// HTTP worker threads of `serve` (`WEB_CONCURRENCY`, the variable Heroku's buildpacks use
    /// for a web process's concurrency); 0: one per CPU core.
    pub web_concurrency: usize,
    /// Key clients by the last address of `X-Forwarded-For` (behind a router that appends the
    /// address it saw, as Heroku's does) instead of the connection's peer address.
    pub trust_forwarded_for: bool,
    /// The address clients reach the service at (`https://host`, no trailing slash), for links
    /// sent elsewhere (webhook events); None: such links are paths.
    pub public_url: Option<String>,
}

/// The database holding jobs and reports.
#[derive(Clone, Debug, PartialEq)]
pub struct DatabaseConfig {
    /// sqlx URL, `sqlite://sentiq.db?mode=rwc` by default.
    pub url: String,
    /// Most PostgreSQL connections of this process (None: `serve` opens up to
    /// [`SERVE_CONNECTIONS`], a worker what its concurrency needs).
    pub max_connections: Option<u32>,
}

/// PostgreSQL connections of `serve` when `DATABASE_MAX_CONNECTIONS` is unset.
pub const SERVE_CONNECTIONS: u32 = 16;

/// Where jobs wait for a worker.
#[derive(Clone, Debug, PartialEq)]
pub struct QueueConfig {
    /// `redis://` or `rediss://` URL of the production queue; None: the embedded SQLite queue.
    pub redis_url: Option<String>,
    /// Prefix of every Redis key and channel (several deployments can share one Redis).
    pub redis_namespace: String,
    /// Inputs at least this large go to the `bulk` queue, smaller ones to `quick`.
    pub bulk_threshold_bytes: usize,
    /// Fallback poll interval of idle workers (pushes in the same process wake them at once).
    pub poll_interval: Duration,
}

/// The workers, in `serve` or in `sentiq worker`.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkerConfig {
    /// Whether `serve` runs the in-process worker (tests turn it off to keep jobs queued).
    pub run_in_process: bool,
    /// Queues a worker consumes.
    pub queues: Vec<QueueName>,
    /// Analyses a worker runs at once, per queue.
    pub concurrency: usize,
    /// Most jobs of queue `quick` a worker holds at once with Redis: fetched, claimed, waiting
    /// for an analysis slot or for their writes (their claims and finishes are group-committed,
    /// so many in flight make few statements). Queue `bulk` holds `concurrency`.
    pub in_flight: usize,
    /// `sentiq worker` serves its `/metrics` on this port (None: it serves nothing).
    pub metrics_port: Option<u16>,
    /// Lease, reconcile interval, retry base delay and time-out of runs.
    pub timing: Timing,
}

/// Lease, retry and time-out timing (shortened by tests).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Timing {
    /// How long a running job may go without any update before the reconciler hands it to
    /// another worker (its worker is then presumed dead). Running jobs refresh it every
    /// `lease / 4`. With the default reconcile interval a SIGKILLed worker's job is running
    /// again elsewhere within lease + interval = 20 s.
    pub lease: Duration,
    /// Interval of the reconciler.
    pub reconcile_every: Duration,
    /// First retry delay after a transient error (then doubled per attempt, with jitter).
    pub retry_base: Duration,
    /// Longest a run may analyse before it is stopped and the job fails with code `timeout`
    /// (None: no limit).
    pub job_timeout: Option<Duration>,
}

/// Completion webhooks ([`crate::webhooks`]).
#[derive(Clone, Debug, PartialEq)]
pub struct WebhookConfig {
    /// The signing key; None: webhooks are off and a submission with a `webhook_url` is refused.
    pub secret: Option<crate::webhooks::SigningKey>,
    /// Deliver to loopback, private, link-local and other non-public addresses too.
    pub allow_private: bool,
    /// The delay before each retry of a failed delivery (the first attempt is made at once).
    pub retry_schedule: Vec<Duration>,
    /// How long a receiver has to answer one attempt.
    pub timeout: Duration,
}

/// What one client may submit.
#[derive(Clone, Debug, PartialEq)]
pub struct LimitsConfig {
    /// Submissions a client may make per minute (`POST /api/jobs`, `POST /analyses`); 0: no limit.
    pub submit_rate_per_minute: u32,
    /// Submissions a client may make at once before the per-minute rate applies.
    pub submit_burst: u32,
    /// How long an idempotency key gives the first answer again.
    pub idempotency_ttl: Duration,
    /// Requests of one web process that may wait at once for a job (`Prefer: wait`): each holds
    /// a connection and a little memory, so their number has a cap.
    pub max_waiters: usize,
    /// Event streams one web process keeps open at once, for the same reason.
    pub max_event_streams: usize,
}

/// How long a job's data is kept, and how often the workers prune.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// How long a final job's input, items and report are kept (None: forever).
    pub result_ttl: Option<Duration>,
    /// How long an expired or deleted job's row stays as a tombstone (410 Gone, then 404).
    pub tombstone_ttl: Duration,
    /// Interval of the pruner (in every worker process).
    pub prune_every: Duration,
}

impl Retention {
    fn read(r: &Reader) -> Result<Self, ConfigError> {
        let result_ttl = r.required::<u64>(&RESULT_TTL)?;
        Ok(Retention {
            result_ttl: (result_ttl > 0).then(|| Duration::from_secs(result_ttl)),
            tombstone_ttl: Duration::from_secs(r.required(&TOMBSTONE_TTL)?),
            prune_every: r.millis(&PRUNE_INTERVAL_MS)?,
        })
    }
}

/// Who may see what.
#[derive(Clone, Debug, PartialEq)]
pub struct SecurityConfig {
    /// The operator dashboard's token; None: `/admin` does not exist (404).
    pub admin_token: Option<Secret>,
}

/// Who may use the JSON API and the browser form.
#[derive(Clone, Debug, PartialEq)]
pub struct ClientsConfig {
    /// Whether requests to the JSON API authenticate with API keys.
    pub api_keys: ApiKeys,
    /// Whether the browser form (`GET /`, `POST /analyses`) is open to anyone.
    pub public_form: bool,
}

/// `API_KEYS`: how the JSON API treats `Authorization: Bearer <key>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApiKeys {
    /// The header is ignored: every request is anonymous.
    Off,
    /// A request without a key is anonymous; a key sent must be valid.
    Optional,
    /// Every route of the API but health, readiness, metrics and the OpenAPI document needs a
    /// valid key.
    Required,
}

impl std::str::FromStr for ApiKeys {
    type Err = String;

    fn from_str(s: &str) -> Result<ApiKeys, String> {
        match s.to_ascii_lowercase().as_str() {
            "off" => Ok(ApiKeys::Off),
            "optional" => Ok(ApiKeys::Optional),
            "required" => Ok(ApiKeys::Required),
            _ => Err("must be off, optional or required".into()),
        }
    }
}

impl ClientsConfig {
    fn read(r: &Reader) -> Result<Self, ConfigError> {
        Ok(ClientsConfig {
            api_keys: r.required(&API_KEYS)?,
            public_form: r.flag(&PUBLIC_FORM),
        })
    }
}

impl Default for Config {
    /// What an empty environment gives: the defaults of [`SECTIONS`], which need nothing
    /// installed.
    fn default() -> Self {
        Config::from_lookup(|_| None).expect("the defaults in config::SECTIONS parse")
    }
}

/// A variable that is set but cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("environment variable {name}={value:?}: {reason}")]
pub struct ConfigError {
    pub name: &'static str,
    pub value: String,
    pub reason: String,
}

impl ConfigError {
    /// The same refusal without the value (a secret must not reach the logs).
    fn hidden(self) -> ConfigError {
        ConfigError {
            value: "(hidden)".into(),
            ..self
        }
    }
}

/// Reads variables through a lookup function, with the rules every variable shares.
struct Reader<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl Reader<'_> {
    /// The value as set (untrimmed, as error messages quote it), unless blank.
    fn set(&self, var: &Var) -> Option<String> {
        (self.lookup)(var.name).filter(|v| !v.trim().is_empty())
    }

    /// The trimmed value, or the default's text when unset.
    fn text(&self, var: &Var) -> Option<String> {
        self.set(var)
            .map(|v| v.trim().to_owned())
            .or_else(|| var.default.map(str::to_owned))
    }

    /// The value (or default) turned into a `T` by `parse`, whose refusal names the variable.
    fn parse_with<T>(
        &self,
        var: &Var,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ConfigError> {
        let set = self.set(var);
        let Some(text) = set.as_deref().map(str::trim).or(var.default) else {
            return Ok(None);
        };
        parse(text).map(Some).map_err(|reason| ConfigError {
            name: var.name,
            value: set.clone().unwrap_or_else(|| text.to_owned()),
            reason,
        })
    }

    fn optional<T: std::str::FromStr>(&self, var: &Var) -> Result<Option<T>, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        self.parse_with(var, |text| text.parse().map_err(|e: T::Err| e.to_string()))
    }

    fn required<T: std::str::FromStr>(&self, var: &Var) -> Result<T, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        self.optional(var)?.ok_or_else(|| ConfigError {
            name: var.name,
            value: String::new(),
            reason: "must be set".into(),
        })
    }

    /// Milliseconds, at least 1 (tokio's intervals refuse a zero period).
    fn millis(&self, var: &Var) -> Result<Duration, ConfigError> {
        Ok(Duration::from_millis(self.required::<u64>(var)?.max(1)))
    }

    /// A yes/no variable; a spelling that is neither counts as unset, as it always has.
    fn flag(&self, var: &Var) -> bool {
        self.set(var)
            .and_then(|v| yes_or_no(&v))
            .or_else(|| var.default.and_then(yes_or_no))
            .unwrap_or(false)
    }
}

/// `1`, `true`, `yes`, `on` are yes; `0`, `false`, `no`, `off` are no (any case).
fn yes_or_no(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// `JOB_TIMEOUT` in seconds (fractions allowed); `0` means no limit.
fn job_timeout(text: &str) -> Result<Option<Duration>, String> {
    if text.parse::<f64>() == Ok(0.0) {
        return Ok(None);
    }
    positive_seconds(text)
        .map(Some)
        .map_err(|_| "seconds must be 0 (no limit) or a positive number".into())
}

/// A positive number of seconds (fractions allowed).
fn positive_seconds(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .parse()
        .map_err(|e: std::num::ParseFloatError| e.to_string())?;
    if secs > 0.0 && secs < 1e9 {
        Ok(Duration::from_secs_f64(secs))
    } else {
        Err("seconds must be a positive number".into())
    }
}

/// `PUBLIC_URL`: an `http://` or `https://` address with a host, kept without a trailing slash.
fn public_url(text: &str) -> Result<String, String> {
    let url = reqwest::Url::parse(text).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err("must be an http:// or https:// address with a host".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must have no query and no fragment".into());
    }
    Ok(text.trim_end_matches('/').to_owned())
}

/// `5s,5m,30m,2h` → the durations, in order: a whole or decimal number and a unit (`ms`, `s`,
/// `m`, `h` or `d`) each, comma-separated; none at all (`0`, `none`) for no retries.
pub fn durations(list: &str) -> Result<Vec<Duration>, String> {
    if matches!(list.trim(), "0" | "none") {
        return Ok(Vec::new());
    }
    list.split(',').map(|d| duration(d.trim())).collect()
}

/// One duration of [`durations`].
fn duration(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let seconds_per_unit = match unit.trim() {
        "ms" => 0.001,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        "d" => 86_400.0,
        _ => {
            return Err(format!(
                "{text:?} is not a duration like 500ms, 5s, 5m, 2h or 1d"
            ));
        }
    };
    let n: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 500ms, 5s, 5m, 2h or 1d"))?;
    let secs = n * seconds_per_unit;
    if !(secs.is_finite() && secs < 1e9) {
        return Err(format!("{text:?} is too long"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// `quick,bulk` → the known queue names, in order, without repeats.
pub fn parse_queues(list: &str) -> Result<Vec<QueueName>, String> {
    let mut queues: Vec<QueueName> = Vec::new();
    for q in list.split(',').map(str::trim).filter(|q| !q.is_empty()) {
        let Ok(queue) = q.parse::<QueueName>() else {
            return Err(format!("unknown queue {q:?}: use quick and/or bulk"));
        };
        if !queues.contains(&queue) {
            queues.push(queue);
        }
    }
    if queues.is_empty() {
        return Err("no queue named: use quick and/or bulk".into());
    }
    Ok(queues)
}

/// A `rediss://` URL whose server certificate is not verified (Heroku Redis presents a
/// self-signed one): the redis client's `#insecure` fragment. Other URLs are unchanged.
pub fn insecure_tls(url: String) -> String {
    if url.starts_with("rediss://") && !url.contains('#') {
        url + "#insecure"
    } else {
        url
    }
}

impl HttpConfig {
    fn read(r: &Reader) -> Result<Self, ConfigError> {
        Ok(HttpConfig {
            host: r.text(&HOST).unwrap_or_default(),
            port: r.required(&PORT)?,
            max_body_bytes: r.required(&MAX_BODY_BYTES)?,
            memory_budget_bytes: r.required::<usize>(&MEMORY_BUDGET_MB)?.max(4) << 20,
            max_connections: r.required::<usize>(&MAX_CONNECTIONS)?.max(1),
            max_submissions_in_flight: r.required::<usize>(&MAX_SUBMISSIONS_IN_FLIGHT)?.max(1),
            web_concurrency: r.required(&WEB_CONCURRENCY)?,
            trust_forwarded_for: r.flag(&TRUST_FORWARDED_FOR),
            public_url: r.parse_with(&PUBLIC_URL, public_url)?,
        })
    }
}

impl DatabaseConfig {
    fn read(r: &Reader) -> Result<Self, ConfigError> {
        Ok(DatabaseConfig {
            url: r.text(&DATABASE_URL).unwrap_or_default(),
            max_connections: r
                .optional::<u32>(&DATABASE_MAX_CONNECTIONS)?
                .map(|n| n.max(2)),
        })
    }
}

impl QueueConfig {
    fn read(r: &Reader) -> Result<Self, ConfigError> {
        let insecure = r.flag(&REDIS_TLS_INSECURE);
        Ok(QueueConfig {
            redis_url: r
                .text(&REDIS_URL)
                .map(|url| if insecure { insecure_tls(url) } else { url }),
            redis_namespace: r.text(&REDIS_NAMESPACE).unwrap_or_default(),
            bulk_threshold_bytes: r.required(&BULK_THRESHOLD_BYTES)?,
            poll_interval: Duration::from_millis(r.required::<u64>(&POLL_INTERVAL_MS)?.max(5)),
        })
    }
}

impl WorkerConfig {
    fn read(r: &Reader) -> Result<Self, ConfigError> {
        Ok(WorkerConfig {
            run_in_process: r.flag(&RUN_WORKER),
            queues: r
                .parse_with(&WORKER_QUEUES, parse_queues)?
                .unwrap_or_default(),
            concurrency: r.required::<usize>(&WORKER_CONCURRENCY)?.max(1),
            in_flight: r.required::<usize>(&WORKER_IN_FLIGHT)?.max(1),
            metrics_port: r.optional(&METRICS_PORT)?,
            timing: Timing {
                lease: r.millis(&JOB_LEASE_MS)?,
                reconcile_every: r.millis(&RECONCILE_INTERVAL_MS)?,
                retry_base: r.millis(&RETRY_BASE_MS)?,
                job_timeout: r.parse_with(&JOB_TIMEOUT, job_timeout)?.flatten(),
            },
        })
    }
}

impl LimitsConfig {
    fn read(r: &Reader) -> Result<Self, ConfigError> {
        Ok(LimitsConfig {
            submit_rate_per_minute: r.required(&SUBMIT_RATE_PER_MINUTE)?,
            submit_burst: r.required::<u32>(&SUBMIT_BURST)?.max(1),
            idempotency_ttl: Duration::from_secs(r.required::<u64>(&IDEMPOTENCY_TTL)?.max(1)),
            max_waiters: r.required(&MAX_WAITERS)?,
            max_event_streams: r.required(&MAX_EVENT_STREAMS)?,
        })
    }
}

impl SecurityConfig {
    fn read(r: &Reader) -> Result<Self, ConfigError> {
        Ok(SecurityConfig {
            admin_token: r.text(&ADMIN_TOKEN).map(Secret),
        })
    }
}

impl WebhookConfig {
    fn read(r: &Reader) -> Result<Self, ConfigError> {
        Ok(WebhookConfig {
            secret: r
                .parse_with(&WEBHOOK_SECRET, crate::webhooks::SigningKey::parse)
                .map_err(ConfigError::hidden)?,
            allow_private: r.flag(&WEBHOOK_ALLOW_PRIVATE),
            retry_schedule: r
                .parse_with(&WEBHOOK_RETRY_SCHEDULE, durations)?
                .unwrap_or_default(),
            timeout: r
                .parse_with(&WEBHOOK_TIMEOUT, positive_seconds)?
                .unwrap_or(Duration::from_secs(10)),
        })
    }
}

impl Config {
    /// The configuration the environment describes (see [`SECTIONS`]).
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// The configuration `lookup` describes: it is asked for each variable of [`SECTIONS`] by
    /// name and answers its value, or None when it is unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let r = Reader { lookup: &lookup };
        Ok(Config {
            http: HttpConfig::read(&r)?,
            database: DatabaseConfig::read(&r)?,
            queue: QueueConfig::read(&r)?,
            worker: WorkerConfig::read(&r)?,
            limits: LimitsConfig::read(&r)?,
            retention: Retention::read(&r)?,
            security: SecurityConfig::read(&r)?,
            clients: ClientsConfig::read(&r)?,
            webhooks: WebhookConfig::read(&r)?,
        })
    }

    /// Why this configuration cannot run, if it cannot: the embedded queue lives in the SQLite
    /// file, so PostgreSQL needs Redis; Redis URLs must be `redis://` or `rediss://`.
    pub fn check(&self) -> Result<(), String> {
        if let Some(url) = &self.queue.redis_url
            && !(url.starts_with("redis://") || url.starts_with("rediss://"))
        {
            return Err(format!(
                "REDIS_URL must start with redis:// or rediss:// (got {})",
                crate::db::redact(url)
            ));
        }
        if self.queue.redis_url.is_none() && crate::db::is_postgres_url(&self.database.url) {
            return Err(
                "DATABASE_URL names PostgreSQL but REDIS_URL is not set: the embedded \
                 queue lives in a SQLite database, so PostgreSQL needs the Redis queue \
                 (set REDIS_URL=redis://...)"
                    .into(),
            );
        }
        Ok(())
    }

    /// The queue a job of `input_bytes` goes to.
    pub fn queue_for(&self, input_bytes: usize) -> QueueName {
        if input_bytes >= self.queue.bulk_threshold_bytes {
            QueueName::Bulk
        } else {
            QueueName::Quick
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
