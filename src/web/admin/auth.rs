//! Who may use the dashboard: the admin token a request presents (Bearer or the password of
//! Basic), compared in constant time, and the CSRF token that the dashboard's forms carry
//! because a browser would send the Basic credentials with a forged post too.

use actix_web::HttpRequest;
use actix_web::http::header;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::web::{AppState, csrf};

type HmacSha256 = Hmac<Sha256>;

/// The message whose HMAC (keyed with the admin token) is the CSRF token of the forms.
const CSRF_MESSAGE: &[u8] = b"sentiq admin csrf";

/// Whether the request presents `token`.
pub(super) fn authorized(headers: &header::HeaderMap, token: &str) -> bool {
    presented_token(headers).is_some_and(|presented| same_secret(&presented, token.as_bytes()))
}

/// Basic credentials are standard base64; some clients leave out the padding.
const BASIC: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

/// The token of `Authorization: Bearer <token>`, or the password of
/// `Authorization: Basic base64(user:password)`.
fn presented_token(headers: &header::HeaderMap) -> Option<Vec<u8>> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, credentials) = value.split_once(' ')?;
    let credentials = credentials.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        Some(credentials.as_bytes().to_vec())
    } else if scheme.eq_ignore_ascii_case("basic") {
        let decoded = BASIC.decode(credentials).ok()?;
        let colon = decoded.iter().position(|&b| b == b':')?;
        Some(decoded[colon + 1..].to_vec())
    } else {
        None
    }
}

/// Whether two secrets are equal, in a time that tells nothing of where they differ nor of the
/// configured token's length: `ct_eq` on slices of different lengths returns at once, so it
/// compares their digests, which always have the same length.
fn same_secret(presented: &[u8], expected: &[u8]) -> bool {
    let (presented, expected) = (Sha256::digest(presented), Sha256::digest(expected));
    presented.as_slice().ct_eq(expected.as_slice()).into()
}

/// The token configured (the guard let the request through, so there is one).
pub(super) fn admin_token(state: &AppState) -> &str {
    state
        .config
        .security
        .admin_token
        .as_ref()
        .map(|t| t.expose())
        .unwrap_or_default()
}

fn csrf_mac(token: &str) -> HmacSha256 {
    let mut mac =
        HmacSha256::new_from_slice(token.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(CSRF_MESSAGE);
    mac
}

/// The CSRF token of the forms: hex HMAC-SHA256(key = admin token, message = "sentiq admin csrf").
pub fn csrf_token(admin_token: &str) -> String {
    hex::encode(csrf_mac(admin_token).finalize().into_bytes())
}

/// Whether `presented` (hex) is the CSRF token, compared in constant time.
fn csrf_valid(admin_token: &str, presented: &str) -> bool {
    hex::decode(presented).is_ok_and(|tag| csrf_mac(admin_token).verify_slice(&tag).is_ok())
}

/// Why an action must not run, if it must not: a missing or wrong CSRF token, or a request
/// from another site. Answered 403, and nothing is changed.
pub(super) fn forbidden_reason(
    req: &HttpRequest,
    body: &[u8],
    admin_token: &str,
) -> Option<&'static str> {
    if csrf::cross_site(req) {
        return Some("this action was requested from another site");
    }
    let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(body).unwrap_or_default();
    let presented = fields.iter().find(|(k, _)| k == "csrf").map(|(_, v)| v);
    match presented {
        Some(p) if csrf_valid(admin_token, p) => None,
        Some(_) => Some("the form's security token is wrong; reload the dashboard and try again"),
        None => Some("the form's security token is missing; reload the dashboard and try again"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_decode_with_and_without_padding() {
        assert_eq!(BASIC.decode("YWRtaW46czNjcmV0").unwrap(), b"admin:s3cret");
        assert_eq!(BASIC.decode("YQ==").unwrap(), b"a");
        assert_eq!(BASIC.decode("YQ").unwrap(), b"a");
        assert!(BASIC.decode("Y").is_err());
        assert!(BASIC.decode("YW*u").is_err());
    }

    #[test]
    fn the_password_of_basic_and_the_bearer_token_are_what_is_presented() {
        let mut h = header::HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            "Basic dXNlcjpwYTpzcw==".parse().unwrap(),
        );
        assert_eq!(presented_token(&h).unwrap(), b"pa:ss");
        h.insert(header::AUTHORIZATION, "bearer  tok en ".parse().unwrap());
        assert_eq!(presented_token(&h).unwrap(), b"tok en");
        h.insert(header::AUTHORIZATION, "Digest x".parse().unwrap());
        assert!(presented_token(&h).is_none());
    }

    #[test]
    fn secrets_match_only_when_equal_whatever_their_lengths() {
        assert!(same_secret(b"token", b"token"));
        assert!(!same_secret(b"token", b"tokem"));
        assert!(!same_secret(b"token", b"token "));
        assert!(!same_secret(b"", b"token"));
        assert!(!same_secret(b"token", b""));
        assert!(same_secret(b"", b""));
    }

    #[test]
    fn the_csrf_token_is_the_hex_hmac_of_the_fixed_message_under_the_admin_token() {
        let t = csrf_token("s3cret");
        assert_eq!(t.len(), 64);
        assert!(csrf_valid("s3cret", &t));
        assert!(csrf_valid("s3cret", &t.to_uppercase()));
        assert!(!csrf_valid("other", &t));
        assert!(!csrf_valid("s3cret", &t[..62]));
        assert!(!csrf_valid("s3cret", "zz"));
        assert!(!csrf_valid("s3cret", &format!("+{}", &t[1..])));
        assert_ne!(csrf_token("a"), csrf_token("b"));
    }
}
