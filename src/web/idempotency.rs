//! The `Idempotency-Key` request header (IETF httpapi draft "The Idempotency-Key HTTP Header
//! Field", as Stripe uses it) and the browser form's one-time submission token: how a request
//! names its key and how two requests are told apart. The store does the rest
//! ([`crate::jobs::idempotency`]).
//!
//! Keys are scoped by where they come from: `key:<API key id>:` for a client with an API key,
//! `api:` for anonymous API requests, `form:` for the browser form; a key means the same only
//! within its scope.

use std::time::Duration;

use actix_web::HttpRequest;
use sha2::{Digest, Sha256};

use super::errors::ApiError;
use crate::jobs::idempotency::KeyClaim;
use crate::timestamp::Timestamp;

/// The request header.
pub const HEADER: &str = "Idempotency-Key";
/// The response header of a replayed answer.
pub const REPLAYED: &str = "Idempotent-Replayed";
/// The form field of the one-time submission token.
pub const FORM_FIELD: &str = "submission";
/// Longest key accepted.
pub const MAX_KEY_LEN: usize = 255;

/// A client's key: 1 to 255 printable ASCII characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// The key as sent: a bare token (`Idempotency-Key: 8e03-…`, as most clients send it) or
    /// the draft's structured-field string (`Idempotency-Key: "8e03-…"`).
    pub fn parse(raw: &str) -> Result<IdempotencyKey, String> {
        let key = match raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
            Some(quoted) if !quoted.contains(['"', '\\']) => quoted,
            Some(_) => return Err("a quoted key may not contain quotes or backslashes".into()),
            None => raw,
        };
        if key.is_empty() {
            return Err("the key is empty".into());
        }
        if key.len() > MAX_KEY_LEN {
            return Err(format!(
                "the key is {} characters long; at most {MAX_KEY_LEN} are allowed",
                key.len()
            ));
        }
        if let Some(bad) = key.chars().find(|c| !(' '..='~').contains(c)) {
            return Err(format!(
                "the key may hold printable ASCII characters only, not {bad:?}"
            ));
        }
        Ok(IdempotencyKey(key.to_owned()))
    }

    /// The key of a request: None without the header; a 400 when it is malformed or repeated.
    pub fn from_request(req: &HttpRequest) -> Result<Option<IdempotencyKey>, ApiError> {
        let mut values = req.headers().get_all(HEADER);
        let Some(value) = values.next() else {
            return Ok(None);
        };
        let bad = |why: String| ApiError::Invalid {
            code: "invalid_idempotency_key",
            message: format!("the {HEADER} header is not usable: {why}"),
        };
        if values.next().is_some() {
            return Err(bad("it is sent more than once".into()));
        }
        let raw = value
            .to_str()
            .map_err(|_| bad("it is not printable ASCII".into()))?;
        IdempotencyKey::parse(raw.trim()).map(Some).map_err(bad)
    }

    /// The claim of an API request with this key, by the client with API key `client` (its
    /// id), or by an anonymous client: each API key has keys of its own, so two clients that
    /// happen to choose the same Idempotency-Key never meet; anonymous requests share one
    /// scope, as before API keys.
    pub fn claim(&self, client: Option<&str>, fingerprint: String, ttl: Duration) -> KeyClaim {
        let scope_key = match client {
            Some(key_id) => format!("key:{key_id}:{}", self.0),
            None => format!("api:{}", self.0),
        };
        KeyClaim {
            scope_key,
            fingerprint,
            expires_at: Timestamp::now().plus(ttl),
        }
    }
}

/// The claim of a form post carrying a submission token. The request's fingerprint is part of
/// the key: the same form sent twice (a double click, Back and send again) finds the first
/// job, while a form changed after Back and sent again is a new analysis, not a refusal.
pub fn form_claim(token: &str, fingerprint: String, ttl: Duration) -> Option<KeyClaim> {
    let token = IdempotencyKey::parse(token).ok()?;
    Some(KeyClaim {
        scope_key: format!("form:{}:{fingerprint}", token.0),
        fingerprint,
        expires_at: Timestamp::now().plus(ttl),
    })
}

/// SHA-256 (hex) of the parts of a request, each length-prefixed so no two different lists of
/// parts hash alike.
pub fn fingerprint(parts: &[&[u8]]) -> String {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part);
    }
    hex::encode(hash.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_bare_or_quoted_printable_ascii_up_to_255_characters() {
        assert_eq!(IdempotencyKey::parse("abc-1").unwrap().0, "abc-1");
        assert_eq!(IdempotencyKey::parse("\"abc 1\"").unwrap().0, "abc 1");
        assert!(IdempotencyKey::parse(&"k".repeat(255)).is_ok());
        for bad in ["", "\"\"", &"k".repeat(256), "tab\there", "é", "\"a\"b\""] {
            assert!(IdempotencyKey::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn each_api_key_has_a_scope_of_its_own_and_anonymous_clients_share_one() {
        let key = IdempotencyKey::parse("order-1").unwrap();
        let ttl = Duration::from_secs(60);
        let scope = |client| key.claim(client, "f".into(), ttl).scope_key;
        assert_eq!(scope(None), "api:order-1");
        assert_eq!(scope(Some("k1")), "key:k1:order-1");
        assert_ne!(scope(Some("k1")), scope(Some("k2")));
    }

    #[test]
    fn fingerprints_tell_the_parts_apart() {
        assert_eq!(fingerprint(&[b"a", b"bc"]), fingerprint(&[b"a", b"bc"]));
        assert_ne!(fingerprint(&[b"a", b"bc"]), fingerprint(&[b"ab", b"c"]));
        assert_eq!(fingerprint(&[]).len(), 64);
    }
}
