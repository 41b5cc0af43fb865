//! Delivering the outbox: every worker process (`sentiq worker`, and `serve` with its
//! in-process worker) runs [`deliver_forever`].
//!
//! The loop claims due deliveries through the job store, each under a lease of three times the
//! receiver's time limit ([`Sender::lease`]), and makes up to [`IN_FLIGHT`] attempts at once.
//! It looks for due deliveries every [`POLL`], at once when a job with a webhook ends in this
//! process, and when a retry it scheduled is due sooner than that. An attempt POSTs the event ([`super::Event`]) with the Standard Webhooks headers:
//! `webhook-id` (the delivery's id, the same on every attempt), `webhook-timestamp` (this
//! attempt's Unix time) and `webhook-signature`. Redirects are not followed, and the client
//! connects only to addresses it has just checked ([`super::address::CheckedResolver`]).
//!
//! The answer decides ([`next_state`]): a 2xx delivers; 410 Gone stops for good; anything else
//! (another status, a time-out, a refused connection) waits for the next step of the retry
//! schedule, give or take [`JITTER`], or longer if the receiver's `Retry-After` asks so (at
//! most [`MAX_RETRY_AFTER`]); after the last step the delivery fails. The job's own status never
//! changes because of its webhook.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use reqwest::header::{CONTENT_TYPE, HeaderMap, RETRY_AFTER};
use tokio::sync::Semaphore;

use super::address::{self, CheckedResolver};
use super::{Event, SigningKey};
use crate::config::Config;
use crate::deps::Deps;
use crate::jobs::model::Status;
use crate::jobs::webhooks::{Attempted, Delivery, DeliveryStatus};
use crate::timestamp::Timestamp;

/// Attempts one process makes at once.
pub const IN_FLIGHT: usize = 8;
/// How often the loop looks for due deliveries when nothing woke it.
pub const POLL: Duration = Duration::from_secs(1);
/// Each retry delay is its step of the schedule, up to this fraction more or less, so the
/// retries of many events that failed together (a receiver's outage) do not come back at once.
pub const JITTER: f64 = 0.2;
/// The longest wait a receiver's `Retry-After` can ask for.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);
/// The longest `last_error` kept for the operator.
const ERROR_CHARS: usize = 300;

/// What makes and signs the requests: the configuration's key, schedule and limits, and one
/// HTTP client for all attempts.
#[derive(Debug)]
pub struct Sender {
    client: reqwest::Client,
    key: SigningKey,
    schedule: Vec<Duration>,
    timeout: Duration,
    allow_private: bool,
    public_url: Option<String>,
}

impl Sender {
    /// The sender `config` describes; None when it has no `WEBHOOK_SECRET` (webhooks are off).
    pub fn new(config: &Config) -> Result<Option<Sender>, reqwest::Error> {
        let hooks = &config.webhooks;
        let Some(key) = hooks.secret.clone() else {
            return Ok(None);
        };
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(hooks.timeout)
            .connect_timeout(hooks.timeout)
            .no_proxy()
            .dns_resolver(Arc::new(CheckedResolver {
                allow_private: hooks.allow_private,
            }))
            .user_agent(concat!("sentiq-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Some(Sender {
            client,
            key,
            schedule: hooks.retry_schedule.clone(),
            timeout: hooks.timeout,
            allow_private: hooks.allow_private,
            public_url: config.http.public_url.clone(),
        }))
    }

    /// How long an attempt holds its delivery: the time limit, plus room for resolving,
    /// connecting and recording, three times over. Another worker makes the attempt again only
    /// after this.
    pub fn lease(&self) -> Duration {
        self.timeout * 3
    }

    /// Make one attempt at `d` (claimed, so `d.attempts` counts this one) and say how it went.
    pub async fn attempt(&self, d: &Delivery) -> Answer {
        let url = match address::parse(&d.url) {
            Ok(url) => url,
            Err(e) => return Answer::error(e.to_string()),
        };
        // An address literal never reaches the checking resolver.
        if let Err(e) = address::check_host(&url, self.allow_private) {
            return Answer::error(e.to_string());
        }
        let status = d
            .event
            .strip_prefix("job.")
            .and_then(|s| s.parse::<Status>().ok())
            .unwrap_or(Status::Succeeded);
        let event = Event::new(&d.job_id, status, d.created_at, self.public_url.as_deref());
        let body = match serde_json::to_vec(&event) {
            Ok(body) => body,
            Err(e) => return Answer::error(e.to_string()),
        };
        let timestamp = chrono::Utc::now().timestamp();
        let signature = self.key.sign(&d.id, timestamp, &body);
        let sent = self
            .client
            .post(url)
            .header("webhook-id", &d.id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .header(CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await;
        match sent {
            // The answer's body is not read: only its status and headers count.
            Ok(response) => Answer {
                http_status: Some(response.status().as_u16()),
                retry_after: retry_after(response.headers(), SystemTime::now()),
                error: None,
            },
            Err(e) if e.is_timeout() => {
                Answer::error(format!("no answer within {} s", self.timeout.as_secs_f64()))
            }
            // Without the URL: its query may hold the receiver's token, and this text is logged.
            Err(e) => Answer::error(crate::web::errors::cause_chain(&e.without_url())),
        }
    }

    /// What becomes of `d` after an attempt answered with `answer`.
    pub fn next_state(&self, d: &Delivery, answer: &Answer) -> Attempted {
        next_state(&self.schedule, d, answer, fastrand::f64())
    }
}

/// How an attempt went.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Answer {
    /// The receiver's HTTP status (None: no answer).
    pub http_status: Option<u16>,
    /// The delay the receiver's `Retry-After` asks for.
    pub retry_after: Option<Duration>,
    /// Why there was no answer.
    pub error: Option<String>,
}

impl Answer {
    fn error(why: String) -> Answer {
        Answer {
            error: Some(why),
            ..Answer::default()
        }
    }

    /// Why the attempt did not deliver, for the operator (None: it delivered).
    fn failure(&self) -> Option<String> {
        let text = match (self.http_status, &self.error) {
            (Some(s), _) if (200..300).contains(&s) => return None,
            (Some(s), _) => {
                let status = reqwest::StatusCode::from_u16(s).ok();
                let reason = status.and_then(|s| s.canonical_reason()).unwrap_or("");
                let redirect = if (300..400).contains(&s) {
                    " (redirects are not followed: give the final URL)"
                } else {
                    ""
                };
                format!("HTTP {s} {reason}{redirect}").trim_end().to_owned()
            }
            (None, Some(why)) => why.clone(),
            (None, None) => "no answer".to_owned(),
        };
        Some(text.chars().take(ERROR_CHARS).collect())
    }
}

/// The state after an attempt: delivered on a 2xx, stopped on 410, else pending until the next
/// step of `schedule` (scaled by `1 ± JITTER`, as `unit` in [0, 1) picks; no sooner than
/// `Retry-After`), or failed once the schedule is used up.
pub fn next_state(schedule: &[Duration], d: &Delivery, answer: &Answer, unit: f64) -> Attempted {
    let (status, next_attempt_at) = match answer.http_status {
        Some(s) if (200..300).contains(&s) => (DeliveryStatus::Delivered, None),
        Some(410) => (DeliveryStatus::Stopped, None),
        _ => match usize::try_from(d.failures() - 1)
            .ok()
            .and_then(|step| schedule.get(step))
        {
            Some(step) => {
                let jittered = step.mul_f64(1.0 + JITTER * (2.0 * unit - 1.0));
                let asked = answer.retry_after.map(|r| r.min(MAX_RETRY_AFTER));
                let delay = asked.map_or(jittered, |asked| asked.max(jittered));
                (DeliveryStatus::Pending, Some(Timestamp::from_now(delay)))
            }
            None => (DeliveryStatus::Failed, None),
        },
    };
    Attempted {
        id: d.id.clone(),
        attempt: d.attempts,
        status,
        next_attempt_at,
        http_status: answer.http_status,
        error: answer.failure(),
    }
}

/// `Retry-After` as a delay: whole seconds, or an HTTP date (from `now`).
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or_default())
}

/// Claim and attempt due deliveries, [`IN_FLIGHT`] at most at once, until the task is dropped.
/// Attempts in flight then end with the process; their leases run out and another worker makes
/// them again.
pub async fn deliver_forever(deps: Deps, sender: Arc<Sender>) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    loop {
        let free = slots.available_permits();
        if free == 0 {
            // Wait for an attempt to end.
            drop(slots.acquire().await);
            continue;
        }
        let claimed = match deps.store.claim_deliveries(free, sender.lease()).await {
            Ok(claimed) => claimed,
            Err(e) => {
                tracing::warn!(error = %e, "webhook deliveries not claimed");
                Vec::new()
            }
        };
        let full = claimed.len() == free;
        for d in claimed {
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                break;
            };
            let (deps, sender) = (deps.clone(), sender.clone());
            tokio::spawn(async move {
                attempt(&deps, &sender, d).await;
                drop(slot);
            });
        }
        if full {
            // There may be more due right now.
            continue;
        }
        tokio::select! {
            _ = deps.store.deliveries_woken() => {}
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}

/// One attempt at a claimed delivery, its outcome recorded (fenced by its attempt number),
/// counted and logged.
async fn attempt(deps: &Deps, sender: &Sender, d: Delivery) {
    let started = Instant::now();
    let answer = sender.attempt(&d).await;
    let next = sender.next_state(&d, &answer);
    let duration_ms = started.elapsed().as_millis() as u64;
    let host = url::Url::parse(&d.url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_default();
    match deps.store.record_delivery(&d.job_id, &next).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::warn!(delivery_id = %d.id, job_id = %d.job_id, attempt = d.attempts,
                "webhook attempt not recorded: its lease ran out and another attempt took over");
            return;
        }
        Err(e) => {
            tracing::warn!(delivery_id = %d.id, job_id = %d.job_id, error = %e,
                "webhook attempt not recorded; it is made again after its lease");
            return;
        }
    }
    let outcome = match next.status {
        DeliveryStatus::Delivered => "delivered",
        DeliveryStatus::Stopped => "stopped",
        DeliveryStatus::Failed => "failed",
        DeliveryStatus::Pending => "retry",
    };
    deps.metrics
        .webhook_deliveries
        .with_label_values(&[outcome])
        .inc();
    let retry_in = next
        .next_attempt_at
        .map(|at| Duration::from_secs_f64(Timestamp::now().seconds_until(at)));
    if let Some(wait) = retry_in.filter(|wait| *wait < POLL) {
        // A retry due before the loop's next look: be there on time.
        let store = deps.store.clone();
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            store.wake_deliveries();
        });
    }
    let retry_in_ms = retry_in.map(|wait| wait.as_millis() as u64);
    let error = next.error.as_deref().unwrap_or("");
    if next.status == DeliveryStatus::Delivered {
        tracing::info!(delivery_id = %d.id, job_id = %d.job_id, host, attempt = d.attempts,
            http_status = next.http_status, duration_ms, "webhook delivered");
    } else {
        tracing::warn!(delivery_id = %d.id, job_id = %d.job_id, host, attempt = d.attempts,
            http_status = next.http_status, duration_ms, retry_in_ms, error, outcome,
            "webhook attempt did not deliver");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn delivery(attempts: i64, base: i64) -> Delivery {
        let at: Timestamp = "2026-12-08T10:00:00.000Z".parse().unwrap();
        Delivery {
            id: "msg_1".into(),
            job_id: "j".into(),
            event: "job.succeeded".into(),
            url: "https://example.com/h".into(),
            status: DeliveryStatus::Pending,
            attempts,
            attempts_base: base,
            next_attempt_at: Some(at),
            last_attempt_at: None,
            last_status: None,
            last_error: None,
            delivered_at: None,
            created_at: at,
            updated_at: at,
        }
    }

    fn answer(status: u16) -> Answer {
        Answer {
            http_status: Some(status),
            ..Answer::default()
        }
    }

    const SCHEDULE: [Duration; 2] = [Duration::from_secs(5), Duration::from_secs(300)];

    /// Seconds from now to the next attempt.
    fn wait(a: &Attempted) -> f64 {
        Timestamp::now().seconds_until(a.next_attempt_at.expect("a next attempt"))
    }

    #[test]
    fn a_2xx_delivers_and_410_stops_for_good() {
        let a = next_state(&SCHEDULE, &delivery(1, 0), &answer(204), 0.5);
        assert_eq!(
            (a.status, a.error, a.next_attempt_at),
            (DeliveryStatus::Delivered, None, None)
        );
        let a = next_state(&SCHEDULE, &delivery(1, 0), &answer(410), 0.5);
        assert_eq!(a.status, DeliveryStatus::Stopped);
        assert_eq!(a.error.as_deref(), Some("HTTP 410 Gone"));
        assert_eq!(a.next_attempt_at, None);
    }

    #[test]
    fn failures_follow_the_schedule_with_jitter_then_fail() {
        let a = next_state(&SCHEDULE, &delivery(1, 0), &answer(500), 0.5);
        assert_eq!(a.status, DeliveryStatus::Pending);
        assert!((4.9..=5.1).contains(&wait(&a)), "{}", wait(&a));
        assert_eq!(a.error.as_deref(), Some("HTTP 500 Internal Server Error"));
        let low = next_state(&SCHEDULE, &delivery(2, 0), &answer(503), 0.0);
        assert!((239.0..=241.0).contains(&wait(&low)), "{}", wait(&low));
        let high = next_state(&SCHEDULE, &delivery(2, 0), &answer(503), 0.999_999);
        assert!((359.0..=360.5).contains(&wait(&high)), "{}", wait(&high));
        let a = next_state(
            &SCHEDULE,
            &delivery(3, 0),
            &Answer::error("refused".into()),
            0.5,
        );
        assert_eq!(
            (a.status, a.next_attempt_at),
            (DeliveryStatus::Failed, None)
        );
        assert_eq!(a.error.as_deref(), Some("refused"));
        // Sent again by an operator: the schedule starts over.
        let a = next_state(&SCHEDULE, &delivery(4, 3), &answer(500), 0.5);
        assert!((4.9..=5.1).contains(&wait(&a)), "{}", wait(&a));
        let redirect = next_state(&SCHEDULE, &delivery(1, 0), &answer(302), 0.5);
        assert!(
            redirect
                .error
                .unwrap()
                .contains("redirects are not followed")
        );
    }

    #[test]
    fn retry_after_is_honoured_when_longer_and_capped() {
        let mut a = answer(429);
        a.retry_after = Some(Duration::from_secs(60));
        assert!((59.0..=61.0).contains(&wait(&next_state(&SCHEDULE, &delivery(1, 0), &a, 0.5))));
        a.retry_after = Some(Duration::from_secs(1));
        assert!((4.9..=5.1).contains(&wait(&next_state(&SCHEDULE, &delivery(1, 0), &a, 0.5))));
        a.retry_after = Some(Duration::from_secs(10 * 86_400));
        let capped = wait(&next_state(&SCHEDULE, &delivery(1, 0), &a, 0.5));
        assert!((86_399.0..=86_401.0).contains(&capped), "{capped}");
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = httpdate::parse_http_date("Tue, 08 Dec 2026 10:00:00 GMT").unwrap();
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h, now), None);
        h.insert(RETRY_AFTER, HeaderValue::from_static("120"));
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(120)));
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Tue, 08 Dec 2026 10:05:00 GMT"),
        );
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(300)));
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Tue, 08 Dec 2026 09:00:00 GMT"),
        );
        assert_eq!(retry_after(&h, now), Some(Duration::ZERO));
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h, now), None);
    }
}
