//! Cross-site request forgery protection for the browser forms: `POST /analyses` and
//! `POST /analyses/{id}/cancel`.
//!
//! These forms are cookie-authenticated (the `sentiq_visitor` cookie decides whose recent jobs a
//! submission joins), so another site could otherwise make a visitor's browser post them. Two
//! independent defences, both checked before anything is written:
//!
//! * **A double-submit token.** A page with a form sets the `sentiq_csrf` cookie (a random
//!   64-hex-digit token, `HttpOnly`, `SameSite=Strict`, `Secure` over https) and puts the same
//!   token in a hidden `csrf` field, the first field of the form. A post is accepted only when the
//!   field equals the cookie (compared in constant time). Another site can neither read the
//!   cookie nor the page, so it cannot fill the field in. Nothing is kept on the server: any
//!   process behind the load balancer checks any token, with no shared secret.
//! * **Fetch metadata.** A post with `Sec-Fetch-Site: cross-site`, or with an `Origin` whose host
//!   is not the request's own, is refused even with a valid token (defence in depth against a
//!   token leaked by, say, a cookie set by a sibling subdomain).
//!
//! Multipart forms are read as a stream, and the upload must not be stored before the token is
//! checked, so the token must be the **first part** of a multipart body. Browsers send the parts
//! in document order, which is why the hidden field comes first in every form; a multipart body
//! that starts with anything else is refused.
//!
//! The JSON API under `/api/` needs no token: it reads no cookie and acts for no one in
//! particular (a job it creates belongs to no visitor), so a forged request gains nothing that
//! the attacker could not do by calling the API directly.

use actix_web::HttpRequest;
use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};
use actix_web::http::header::{self, HeaderName};

pub const COOKIE: &str = "sentiq_csrf";
/// The name of the hidden form field.
pub const FIELD: &str = "csrf";
/// Hex digits in a token: two v4 UUIDs, 244 random bits.
const TOKEN_LEN: usize = 64;

static SEC_FETCH_SITE: HeaderName = HeaderName::from_static("sec-fetch-site");

/// Why a form post was refused; logged, never shown (the page says the same thing for all).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejection {
    CrossSite,
    NoCookie,
    NoToken,
    Mismatch,
    /// A Delete of a job that is not the visitor's own (the page shows no such button).
    NotOwner,
}

impl Rejection {
    pub fn reason(self) -> &'static str {
        match self {
            Rejection::CrossSite => "sent from another site",
            Rejection::NoCookie => "no token cookie",
            Rejection::NoToken => "no token in the form",
            Rejection::Mismatch => "the token does not match the cookie",
            Rejection::NotOwner => "the job is not the visitor's own",
        }
    }
}

fn well_formed(token: &str) -> bool {
    token.len() == TOKEN_LEN && token.bytes().all(|b| b.is_ascii_hexdigit())
}

fn new_token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

fn cookie_token(req: &HttpRequest) -> Option<String> {
    req.cookie(COOKIE)
        .map(|c| c.value().to_owned())
        .filter(|t| well_formed(t))
}

/// The token for a page that renders a form, with the cookie to set when the visitor has none
/// yet. An existing token is kept, so pages open in other tabs stay valid.
pub fn token(req: &HttpRequest) -> (String, Option<Cookie<'static>>) {
    if let Some(t) = cookie_token(req) {
        return (t, None);
    }
    let t = new_token();
    let cookie = Cookie::build(COOKIE, t.clone())
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(req.connection_info().scheme() == "https")
        .max_age(CookieDuration::days(365))
        .finish();
    (t, Some(cookie))
}

/// `host[:port]` in lower case, without the port that `scheme` implies anyway.
fn normalise_host(host: &str, scheme: &str) -> String {
    let host = host.to_ascii_lowercase();
    let default_port = match scheme {
        "https" => ":443",
        "http" => ":80",
        _ => return host,
    };
    match host.strip_suffix(default_port) {
        Some(bare) => bare.to_owned(),
        None => host,
    }
}

/// Whether the browser says the post comes from another origin. `Sec-Fetch-Site` must be
/// `same-origin` or `none` (typed or bookmarked): `same-site` is refused too, since a sibling
/// subdomain may belong to someone else. Headers a browser did not send (curl, old browsers)
/// prove nothing either way, so their absence passes: the token still has to match.
pub fn cross_site(req: &HttpRequest) -> bool {
    let headers = req.headers();
    if headers.get(&SEC_FETCH_SITE).is_some_and(|v| {
        !(v.as_bytes().eq_ignore_ascii_case(b"same-origin")
            || v.as_bytes().eq_ignore_ascii_case(b"none"))
    }) {
        return true;
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return false;
    };
    // `null` (a sandboxed frame, a redirect across sites) or anything unreadable is not us.
    let Some((scheme, host)) = origin.to_str().ok().and_then(|o| o.split_once("://")) else {
        return true;
    };
    let info = req.connection_info();
    normalise_host(host, &scheme.to_ascii_lowercase()) != normalise_host(info.host(), info.scheme())
}

/// Equality whose time does not depend on where the first difference is.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// Check a form post: not cross-site, and `submitted` (the `csrf` field) equals the cookie.
pub fn verify(req: &HttpRequest, submitted: Option<&[u8]>) -> Result<(), Rejection> {
    if cross_site(req) {
        return Err(Rejection::CrossSite);
    }
    let cookie = cookie_token(req).ok_or(Rejection::NoCookie)?;
    let submitted = submitted.ok_or(Rejection::NoToken)?;
    if constant_time_eq(cookie.as_bytes(), submitted) {
        Ok(())
    } else {
        Err(Rejection::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn with_cookie(token: &str) -> TestRequest {
        TestRequest::post()
            .insert_header((header::HOST, "sentiq.example"))
            .cookie(Cookie::new(COOKIE, token.to_owned()))
    }

    #[test]
    fn a_new_token_is_well_formed_and_never_repeats() {
        let (a, b) = (new_token(), new_token());
        assert!(well_formed(&a) && well_formed(&b), "{a} {b}");
        assert_ne!(a, b);
    }

    #[test]
    fn a_page_reuses_a_well_formed_cookie_and_replaces_a_bad_one() {
        let good = new_token();
        let (t, set) = token(&with_cookie(&good).to_http_request());
        assert_eq!(t, good);
        assert!(set.is_none());
        let (t, set) = token(&with_cookie("short").to_http_request());
        assert!(well_formed(&t));
        let set = set.expect("a new cookie");
        assert_eq!(set.value(), t);
        assert_eq!(set.http_only(), Some(true));
        assert_eq!(set.same_site(), Some(SameSite::Strict));
        assert_eq!(set.path(), Some("/"));
        assert_eq!(set.secure(), Some(false));
    }

    #[test]
    fn the_cookie_is_secure_when_the_request_came_over_https() {
        let req = TestRequest::get()
            .insert_header(("x-forwarded-proto", "https"))
            .to_http_request();
        assert_eq!(token(&req).1.unwrap().secure(), Some(true));
    }

    #[test]
    fn only_the_token_of_the_cookie_passes() {
        let good = new_token();
        let req = with_cookie(&good).to_http_request();
        assert_eq!(verify(&req, Some(good.as_bytes())), Ok(()));
        assert_eq!(verify(&req, None), Err(Rejection::NoToken));
        let other = new_token();
        assert_eq!(
            verify(&req, Some(other.as_bytes())),
            Err(Rejection::Mismatch)
        );
        assert_eq!(
            verify(&req, Some(&good.as_bytes()[1..])),
            Err(Rejection::Mismatch)
        );
        let no_cookie = TestRequest::post().to_http_request();
        assert_eq!(
            verify(&no_cookie, Some(good.as_bytes())),
            Err(Rejection::NoCookie)
        );
    }

    #[test]
    fn a_post_from_another_origin_or_marked_cross_site_is_refused() {
        let good = new_token();
        let check = |name: &'static str, value: &'static str| {
            let req = with_cookie(&good)
                .insert_header((name, value))
                .to_http_request();
            verify(&req, Some(good.as_bytes()))
        };
        assert_eq!(check("origin", "http://sentiq.example"), Ok(()));
        assert_eq!(check("origin", "http://SENTIQ.example:80"), Ok(()));
        assert_eq!(check("sec-fetch-site", "same-origin"), Ok(()));
        assert_eq!(check("sec-fetch-site", "none"), Ok(()));
        for (name, value) in [
            ("origin", "https://evil.example"),
            ("origin", "http://sentiq.example.evil.example"),
            ("origin", "http://sentiq.example:8080"),
            ("origin", "null"),
            ("sec-fetch-site", "cross-site"),
        ] {
            assert_eq!(
                check(name, value),
                Err(Rejection::CrossSite),
                "{name}: {value}"
            );
        }
    }
}
