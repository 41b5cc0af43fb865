//! Signed completion webhooks, as Standard Webhooks v1 describes them: when a job submitted with
//! a `webhook_url` becomes final, its event is POSTed there, signed, and retried until the
//! receiver takes it.
//!
//! How the parts fit:
//! - The submission's URL is checked before anything is written ([`address::check`]): http or
//!   https, a host that resolves only to public addresses (unless `WEBHOOK_ALLOW_PRIVATE`).
//! - The outbox: the database itself writes a `webhook_deliveries` row in the statement that makes
//!   such a job final (a trigger, see the `*_webhooks.sql` migrations), so no code path can
//!   forget it and none can make one for a job that is not final. The SQL on it lives in
//!   [`crate::jobs::webhooks`]; every change goes through the [`crate::jobs::store::JobStore`].
//! - [`delivery`]: every worker process claims due deliveries under a lease, POSTs them through
//!   a client that checks every address it connects to again ([`address::CheckedResolver`]),
//!   and records the outcome, fenced by the attempt number, so two workers never send one at
//!   once and a dead worker's attempt is made again by another once its lease runs out.
//!
//! Delivery is at least once: a receiver may see an event twice (a worker killed after the
//! receiver answered), always under the same `webhook-id`, its idempotency key.

pub mod address;
pub mod delivery;

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use serde::Serialize;
use sha2::Sha256;

use crate::timestamp::Timestamp;

/// The prefix of a serialised symmetric key.
const KEY_PREFIX: &str = "whsec_";

/// Keys are standard base64; padding is accepted and not required.
const KEY_BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

/// The HMAC-SHA256 key of `WEBHOOK_SECRET`. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey(Vec<u8>);

impl SigningKey {
    /// `whsec_` and the base64 of a 24 to 64-byte key (the sizes Standard Webhooks gives for
    /// symmetric keys). The refusal never quotes the value.
    pub fn parse(text: &str) -> Result<SigningKey, String> {
        let Some(encoded) = text.strip_prefix(KEY_PREFIX) else {
            return Err(format!(
                "must be {KEY_PREFIX} followed by the base64 of the key (the Standard Webhooks \
                 form); generate one with: echo {KEY_PREFIX}$(openssl rand -base64 32)"
            ));
        };
        let key = KEY_BASE64
            .decode(encoded)
            .map_err(|_| format!("the part after {KEY_PREFIX} is not base64"))?;
        if !(24..=64).contains(&key.len()) {
            return Err(format!(
                "the key is {} bytes long; it must be 24 to 64 bytes",
                key.len()
            ));
        }
        Ok(SigningKey(key))
    }

    /// The `webhook-signature` header: `v1,` and the base64 of HMAC-SHA256 over
    /// `{id}.{timestamp}.{body}`.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        let signature = mac.finalize().into_bytes();
        format!(
            "v1,{}",
            base64::engine::general_purpose::STANDARD.encode(signature)
        )
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(***)")
    }
}

/// The body of a webhook request: `{"type", "timestamp", "data": {"id", "status",
/// "status_url"}}`, a thin payload (the receiver reads the result from `status_url`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = WebhookEvent)]
pub struct Event {
    /// `job.succeeded`, `job.failed` or `job.cancelled`.
    #[serde(rename = "type")]
    #[schema(pattern = "^job\\.(succeeded|failed|cancelled)$")]
    pub kind: String,
    /// When the job became final (the same on every attempt; `webhook-timestamp` is the
    /// attempt's).
    #[schema(value_type = String, format = DateTime)]
    pub timestamp: Timestamp,
    pub data: EventData,
}

/// What an event says about its job.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = WebhookEventData)]
pub struct EventData {
    /// The job's id.
    #[schema(format = "uuid")]
    pub id: String,
    /// The job's final status.
    pub status: crate::jobs::model::Status,
    /// The job: `PUBLIC_URL` followed by `/api/jobs/{id}`, or only the path when the server
    /// has no `PUBLIC_URL`.
    pub status_url: String,
}

impl Event {
    /// The event of a job that became `status` at `timestamp`; `public_url` prefixes the link.
    pub fn new(
        job_id: &str,
        status: crate::jobs::model::Status,
        timestamp: Timestamp,
        public_url: Option<&str>,
    ) -> Event {
        Event {
            kind: format!("job.{status}"),
            timestamp,
            data: EventData {
                id: job_id.to_owned(),
                status,
                status_url: format!("{}/api/jobs/{job_id}", public_url.unwrap_or("")),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The published example of the Standard Webhooks libraries' test suites.
    #[test]
    fn the_signature_matches_the_standards_published_example() {
        let key = SigningKey::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            key.sign(
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn keys_must_be_whsec_and_base64_of_24_to_64_bytes_and_never_show() {
        assert!(SigningKey::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
        assert!(SigningKey::parse("whsec_not base64!").is_err());
        let short = format!("whsec_{}", KEY_BASE64.encode([7u8; 23]));
        assert!(SigningKey::parse(&short).unwrap_err().contains("23 bytes"));
        let long = format!("whsec_{}", KEY_BASE64.encode([7u8; 65]));
        assert!(SigningKey::parse(&long).is_err());
        let key = SigningKey::parse(&format!("whsec_{}", KEY_BASE64.encode([7u8; 32]))).unwrap();
        assert_eq!(format!("{key:?}"), "SigningKey(***)");
        let unpadded =
            SigningKey::parse("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").unwrap();
        assert_eq!(unpadded.0.len(), 32);
    }

    #[test]
    fn an_event_names_its_type_and_links_the_job() {
        let at: Timestamp = "2026-12-08T10:00:00.000Z".parse().unwrap();
        let e = Event::new(
            "j1",
            crate::jobs::model::Status::Failed,
            at,
            Some("https://x.io"),
        );
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"type":"job.failed","timestamp":"2026-12-08T10:00:00.000Z","data":{"id":"j1","status":"failed","status_url":"https://x.io/api/jobs/j1"}}"#
        );
        let e = Event::new("j1", crate::jobs::model::Status::Succeeded, at, None);
        assert_eq!(e.data.status_url, "/api/jobs/j1");
    }

    /// README's example request, signed with the standard's example key, verifies.
    #[test]
    fn the_readme_example_request_is_signed_as_it_says() {
        let readme = include_str!("../../README.md");
        let line = |prefix: &str| {
            readme
                .lines()
                .find_map(|l| l.strip_prefix(prefix))
                .unwrap_or_else(|| panic!("README has no line {prefix}"))
        };
        let key = line("`WEBHOOK_SECRET=").split('`').next().unwrap();
        let key = SigningKey::parse(key).unwrap();
        let body = readme
            .lines()
            .find(|l| l.starts_with(r#"{"type":"job."#))
            .expect("README shows an event body");
        let timestamp: i64 = line("webhook-timestamp: ").parse().unwrap();
        assert_eq!(
            key.sign(line("webhook-id: "), timestamp, body.as_bytes()),
            line("webhook-signature: ")
        );
    }
}
