use std::cell::RefCell;
use std::collections::BTreeSet;

use super::*;

/// Variables README's table documents that [`Config`] does not read: logging (`telemetry`) and
/// the analysis threads (`cli`, `--threads`).
pub(crate) const READ_ELSEWHERE: [&str; 3] = ["RUST_LOG", "RUST_LOG_FORMAT", "SENTIQ_THREADS"];

/// README.md's Configuration table: each row's variable and its default cell.
pub(crate) fn readme_rows() -> Vec<(String, String)> {
    let readme = include_str!("../../README.md");
    let table = readme
        .split("\n## Configuration\n")
        .nth(1)
        .expect("README.md has a Configuration section");
    let table = table.split("\n## ").next().unwrap_or(table);
    table
        .lines()
        .filter(|line| line.starts_with("| `"))
        .map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            (cells[1].trim_matches('`').to_owned(), cells[2].to_owned())
        })
        .collect()
}

/// A default cell's value: its first code span (`unset` has none).
fn documented_default(cell: &str) -> Option<&str> {
    cell.starts_with('`')
        .then(|| cell.split('`').nth(1))
        .flatten()
}

/// An environment holding only `pairs`.
fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
    move |name| {
        pairs
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| (*v).to_owned())
    }
}

fn with(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
    Config::from_lookup(env(pairs))
}

#[test]
fn readme_documents_every_variable_read_and_its_default_is_what_an_empty_environment_gives() {
    let rows = readme_rows();
    let documented: BTreeSet<&str> = rows.iter().map(|(name, _)| name.as_str()).collect();
    let read: BTreeSet<&str> = vars().map(|v| v.name).chain(READ_ELSEWHERE).collect();
    assert_eq!(
        documented, read,
        "README's table and config::SECTIONS differ"
    );
    let empty = Config::from_lookup(|_| None).unwrap();
    for (name, cell) in &rows {
        let Some(var) = vars().find(|v| v.name == name) else {
            continue;
        };
        match documented_default(cell) {
            Some(default) => {
                assert_eq!(
                    var.default,
                    Some(default),
                    "{name}: --help shows another default"
                );
                let set = with(&[(name, default)]).unwrap();
                assert_eq!(
                    set, empty,
                    "{name}={default} is not what leaving it unset gives"
                );
            }
            None => {
                assert!(cell.starts_with("unset"), "{name}: default cell {cell:?}");
                assert_eq!(var.default, None, "{name} is documented as unset");
            }
        }
    }
}

#[test]
fn the_parser_asks_for_every_variable_of_the_sections_and_no_other() {
    let asked = RefCell::new(BTreeSet::new());
    Config::from_lookup(|name| {
        asked.borrow_mut().insert(name.to_owned());
        None
    })
    .unwrap();
    let listed: BTreeSet<String> = vars().map(|v| v.name.to_owned()).collect();
    assert_eq!(asked.into_inner(), listed);
    let flags: BTreeSet<&str> = vars().map(|v| v.flag).collect();
    assert_eq!(flags.len(), listed.len(), "two variables share an option");
}

/// (variables set, what the configuration must then show); one case per variable at least.
type Case = (&'static [(&'static str, &'static str)], fn(&Config) -> bool);

const CASES: &[Case] = &[
    (&[("HOST", " 127.0.0.1 ")], |c| c.http.host == "127.0.0.1"),
    (&[("PORT", "9000")], |c| c.http.port == 9000),
    (&[("MEMORY_BUDGET_MB", "64")], |c| {
        c.http.memory_budget_bytes == 64 << 20
    }),
    // Under 4 MiB is raised to 4 MiB.
    (&[("MEMORY_BUDGET_MB", "1")], |c| {
        c.http.memory_budget_bytes == 4 << 20
    }),
    (&[("MAX_BODY_BYTES", "1000")], |c| {
        c.http.max_body_bytes == 1000
    }),
    (&[("WEB_CONCURRENCY", "3")], |c| c.http.web_concurrency == 3),
    (&[("TRUST_FORWARDED_FOR", "yes")], |c| {
        c.http.trust_forwarded_for
    }),
    (&[("DATABASE_URL", "postgres://h/db")], |c| {
        c.database.url == "postgres://h/db"
    }),
    (&[("DATABASE_MAX_CONNECTIONS", "1")], |c| {
        c.database.max_connections == Some(2)
    }),
    (&[("MAX_CONNECTIONS", "0")], |c| c.http.max_connections == 1),
    (&[("MAX_SUBMISSIONS_IN_FLIGHT", "0")], |c| {
        c.http.max_submissions_in_flight == 1
    }),
    (&[("MAX_EVENT_STREAMS", "5")], |c| {
        c.limits.max_event_streams == 5
    }),
    (&[("REDIS_URL", "rediss://h:6380")], |c| {
        c.queue.redis_url.as_deref() == Some("rediss://h:6380")
    }),
    (
        &[("REDIS_URL", "rediss://h"), ("REDIS_TLS_INSECURE", "on")],
        |c| c.queue.redis_url.as_deref() == Some("rediss://h#insecure"),
    ),
    (&[("REDIS_NAMESPACE", "other")], |c| {
        c.queue.redis_namespace == "other"
    }),
    (&[("BULK_THRESHOLD_BYTES", "10")], |c| {
        c.queue.bulk_threshold_bytes == 10
    }),
    (&[("POLL_INTERVAL_MS", "1")], |c| {
        c.queue.poll_interval == Duration::from_millis(5)
    }),
    (&[("RUN_WORKER", "off")], |c| !c.worker.run_in_process),
    (&[("WORKER_QUEUES", "bulk, quick,bulk")], |c| {
        c.worker.queues == [QueueName::Bulk, QueueName::Quick]
    }),
    (&[("WORKER_CONCURRENCY", "0")], |c| {
        c.worker.concurrency == 1
    }),
    (&[("WORKER_IN_FLIGHT", "7")], |c| c.worker.in_flight == 7),
    (&[("METRICS_PORT", "9100")], |c| {
        c.worker.metrics_port == Some(9100)
    }),
    (&[("JOB_LEASE_MS", "0")], |c| {
        c.worker.timing.lease == Duration::from_millis(1)
    }),
    (&[("RECONCILE_INTERVAL_MS", "200")], |c| {
        c.worker.timing.reconcile_every == Duration::from_millis(200)
    }),
    (&[("RETRY_BASE_MS", "30")], |c| {
        c.worker.timing.retry_base == Duration::from_millis(30)
    }),
    (&[("JOB_TIMEOUT", "0.25")], |c| {
        c.worker.timing.job_timeout == Some(Duration::from_millis(250))
    }),
    (&[("JOB_TIMEOUT", "0")], |c| {
        c.worker.timing.job_timeout.is_none()
    }),
    (&[("SUBMIT_RATE_PER_MINUTE", "0")], |c| {
        c.limits.submit_rate_per_minute == 0
    }),
    (&[("SUBMIT_BURST", "0")], |c| c.limits.submit_burst == 1),
    (&[("IDEMPOTENCY_TTL", "90")], |c| {
        c.limits.idempotency_ttl == Duration::from_secs(90)
    }),
    (&[("IDEMPOTENCY_TTL", "0")], |c| {
        c.limits.idempotency_ttl == Duration::from_secs(1)
    }),
    (&[("MAX_WAITERS", "0")], |c| c.limits.max_waiters == 0),
    (&[("RESULT_TTL", "60")], |c| {
        c.retention.result_ttl == Some(Duration::from_secs(60))
    }),
    (&[("RESULT_TTL", "0")], |c| c.retention.result_ttl.is_none()),
    (&[("TOMBSTONE_TTL", "0")], |c| {
        c.retention.tombstone_ttl == Duration::ZERO
    }),
    (&[("PRUNE_INTERVAL_MS", "250")], |c| {
        c.retention.prune_every == Duration::from_millis(250)
    }),
    (&[("ADMIN_TOKEN", " s3cret ")], |c| {
        c.security.admin_token.as_ref().map(Secret::expose) == Some("s3cret")
    }),
    (&[("API_KEYS", "Required")], |c| {
        c.clients.api_keys == super::ApiKeys::Required
    }),
    (&[("API_KEYS", "off")], |c| {
        c.clients.api_keys == super::ApiKeys::Off
    }),
    (&[("PUBLIC_FORM", "no")], |c| !c.clients.public_form),
    (&[("PUBLIC_URL", "https://sentiq.example.com/")], |c| {
        c.http.public_url.as_deref() == Some("https://sentiq.example.com")
    }),
    (&[("WEBHOOK_SECRET", WEBHOOK_KEY)], |c| {
        c.webhooks.secret.as_ref()
            == Some(&crate::webhooks::SigningKey::parse(WEBHOOK_KEY).unwrap())
    }),
    (&[("WEBHOOK_ALLOW_PRIVATE", "true")], |c| {
        c.webhooks.allow_private
    }),
    (&[("WEBHOOK_RETRY_SCHEDULE", "100ms, 1.5s,2m,1h,1d")], |c| {
        c.webhooks.retry_schedule
            == [
                Duration::from_millis(100),
                Duration::from_millis(1500),
                Duration::from_secs(120),
                Duration::from_secs(3600),
                Duration::from_secs(86_400),
            ]
    }),
    (&[("WEBHOOK_TIMEOUT", "2.5")], |c| {
        c.webhooks.timeout == Duration::from_millis(2500)
    }),
];

/// A key in the Standard Webhooks form (the published example's).
const WEBHOOK_KEY: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

#[test]
fn each_variable_sets_its_own_field_with_its_clamp() {
    let default = Config::default();
    for (pairs, holds) in CASES {
        let c = with(pairs).unwrap_or_else(|e| panic!("{pairs:?}: {e}"));
        assert!(holds(&c), "{pairs:?} gave {c:#?}");
        assert_ne!(c, default, "{pairs:?} changed nothing");
    }
    let covered: BTreeSet<&str> = CASES
        .iter()
        .flat_map(|(p, _)| p.iter().map(|(n, _)| *n))
        .collect();
    let listed: BTreeSet<&str> = vars().map(|v| v.name).collect();
    assert_eq!(covered, listed, "a variable without a case");
}

#[test]
fn a_blank_variable_counts_as_unset() {
    for var in vars() {
        for blank in ["", "  ", "\t"] {
            assert_eq!(
                with(&[(var.name, blank)]).unwrap(),
                Config::default(),
                "{}",
                var.name
            );
        }
    }
}

#[test]
fn an_unusable_value_fails_naming_its_variable_and_value() {
    // Kinds whose values are taken as they come; the URLs are checked by `Config::check`.
    let any_text = ["ADDRESS", "URL", "PREFIX", "TOKEN", "BOOL"];
    // Numbers, and the words of a fixed list (MODE).
    let numbers = [
        "PORT",
        "N",
        "BYTES",
        "MIB",
        "MS",
        "SECONDS",
        "QUEUES",
        "DURATIONS",
        "MODE",
    ];
    // Refused without the value in the message.
    let secrets = ["SECRET"];
    for var in vars() {
        assert!(
            any_text.contains(&var.value_name)
                || numbers.contains(&var.value_name)
                || secrets.contains(&var.value_name),
            "{}: which values of a {} are refused?",
            var.name,
            var.value_name
        );
        if any_text.contains(&var.value_name) {
            continue;
        }
        if secrets.contains(&var.value_name) {
            let err = with(&[(var.name, " lots of secret")]).expect_err(var.name);
            assert_eq!(err.name, var.name);
            assert!(!err.to_string().contains("lots"), "{err}");
            continue;
        }
        let err = with(&[(var.name, " lots")]).expect_err(var.name);
        assert_eq!(err.name, var.name);
        assert_eq!(
            err.to_string(),
            format!(
                "environment variable {}=\" lots\": {}",
                var.name, err.reason
            )
        );
    }
    for bad in ["-1", "NaN", "inf", "1e10"] {
        let err = with(&[("JOB_TIMEOUT", bad)]).expect_err(bad);
        assert_eq!((err.name, err.value.as_str()), ("JOB_TIMEOUT", bad));
    }
    let err = with(&[("PORT", "70000")]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "environment variable PORT=\"70000\": number too large to fit in target type"
    );
    assert!(with(&[("WORKER_QUEUES", "quick,slow")]).is_err());
    assert!(with(&[("WORKER_QUEUES", " , ")]).is_err());
}

#[test]
fn yes_no_variables_take_the_usual_spellings_and_ignore_others() {
    for yes in ["1", "true", "YES", " On "] {
        assert!(
            with(&[("TRUST_FORWARDED_FOR", yes)])
                .unwrap()
                .http
                .trust_forwarded_for
        );
    }
    for no in ["0", "false", "No", "OFF"] {
        assert!(!with(&[("RUN_WORKER", no)]).unwrap().worker.run_in_process);
    }
    assert!(
        with(&[("RUN_WORKER", "maybe")])
            .unwrap()
            .worker
            .run_in_process
    );
    assert!(
        !with(&[("TRUST_FORWARDED_FOR", "maybe")])
            .unwrap()
            .http
            .trust_forwarded_for
    );
}

#[test]
fn webhook_settings_refuse_what_cannot_work_and_never_show_the_secret() {
    let err = with(&[("WEBHOOK_SECRET", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")]).unwrap_err();
    assert!(err.to_string().contains("must be whsec_"), "{err}");
    assert!(!err.to_string().contains("MfKQ9r8G"), "{err}");
    let err = with(&[("WEBHOOK_SECRET", "whsec_c2hvcnQ=")]).unwrap_err();
    assert!(err.reason.contains("5 bytes"), "{err}");
    let c = with(&[("WEBHOOK_SECRET", WEBHOOK_KEY)]).unwrap();
    assert!(!format!("{c:?}").contains("MfKQ9r8G"));
    for bad in ["5x", "s", "-1s", "1s,,2s", "1e3s"] {
        assert!(
            with(&[("WEBHOOK_RETRY_SCHEDULE", bad)]).is_err(),
            "{bad:?} was taken"
        );
    }
    assert!(
        with(&[("WEBHOOK_RETRY_SCHEDULE", "none")])
            .unwrap()
            .webhooks
            .retry_schedule
            .is_empty()
    );
    assert!(with(&[("WEBHOOK_TIMEOUT", "0")]).is_err());
    for bad in ["ftp://x", "https://x/?a=1", "x.com", "https://"] {
        assert!(with(&[("PUBLIC_URL", bad)]).is_err(), "{bad:?} was taken");
    }
}

#[test]
fn insecure_tls_marks_only_tls_urls_without_a_fragment() {
    assert_eq!(
        insecure_tls("rediss://:pw@h:6380".into()),
        "rediss://:pw@h:6380#insecure"
    );
    assert_eq!(insecure_tls("redis://h:6379".into()), "redis://h:6379");
    assert_eq!(
        insecure_tls("rediss://h:6380#insecure".into()),
        "rediss://h:6380#insecure"
    );
    let c = with(&[("REDIS_URL", "redis://h"), ("REDIS_TLS_INSECURE", "true")]).unwrap();
    assert_eq!(c.queue.redis_url.as_deref(), Some("redis://h"));
}

#[test]
fn the_admin_token_never_appears_in_debug_output() {
    let c = with(&[("ADMIN_TOKEN", "hunter2-very-secret")]).unwrap();
    let printed = format!("{c:?} {c:#?}");
    assert!(!printed.contains("hunter2"), "{printed}");
    assert!(printed.contains("Secret(***)"));
    assert_eq!(
        c.security.admin_token.unwrap().expose(),
        "hunter2-very-secret"
    );
}

#[test]
fn postgres_without_redis_and_odd_redis_urls_are_refused_with_a_reason() {
    let c = with(&[("DATABASE_URL", "postgres://postgres@127.0.0.1/x")]).unwrap();
    assert_eq!(
        c.check().unwrap_err(),
        "DATABASE_URL names PostgreSQL but REDIS_URL is not set: the embedded queue lives in a \
         SQLite database, so PostgreSQL needs the Redis queue (set REDIS_URL=redis://...)"
    );
    let mut c = c;
    c.queue.redis_url = Some("redis://127.0.0.1".into());
    assert!(c.check().is_ok());
    assert!(Config::default().check().is_ok());
    let c = with(&[("REDIS_URL", "http://:pw@h")]).unwrap();
    let err = c.check().unwrap_err();
    assert!(
        err.starts_with("REDIS_URL must start with redis:// or rediss://"),
        "{err}"
    );
    assert!(!err.contains("pw"), "{err}");
}

#[test]
fn inputs_are_routed_by_size() {
    let c = Config::default();
    assert_eq!(c.queue_for(10), QueueName::Quick);
    assert_eq!(c.queue_for((1 << 20) - 1), QueueName::Quick);
    assert_eq!(c.queue_for(1 << 20), QueueName::Bulk);
}
