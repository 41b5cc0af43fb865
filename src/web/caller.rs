//! Who is calling: the [`Caller`] extractor. Every handler that reads or changes jobs takes one,
//! so authentication happens in one place and a handler only ever sees a valid caller.
//!
//! A caller is a valid API key (`Authorization: Bearer sq_…`, checked against the database on
//! every request: a revoked key is refused at once on every web process), or nobody; either way
//! with the visitor cookie of the browser form when the browser sent one. `API_KEYS` decides
//! how the header is treated:
//!
//! - `off`: ignored; every caller is anonymous.
//! - `optional` (default): no header, anonymous; a header that is not a valid key, 401.
//! - `required`: on `/api/` routes, no header is a 401 as well. (Health, readiness, metrics and
//!   the OpenAPI document take no caller, so they stay open.)
//!
//! Any `Authorization` header is taken as an attempt to authenticate: one that is not
//! `Bearer <key>` is refused rather than ignored, so a client that meant to send a key never
//! makes anonymous jobs by mistake. Keys are never logged: a refusal logs its reason only.
//!
//! Who may see a job ([`Caller::may_see`]): a job submitted with a key, only that key; any other
//! job (the form's, an anonymous request's) anyone who has its id, as before keys existed.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::future::LocalBoxFuture;

use super::AppState;
use super::errors::{ApiError, Unauthenticated};
use super::pages::VISITOR_COOKIE;
use crate::config::ApiKeys;
use crate::jobs::model::{JobRow, Owner};
use crate::keys::{self, Auth, Authenticated};

/// Least time between two writes of a key's `last_used_at` by one process.
pub const LAST_USED_EVERY: Duration = Duration::from_secs(60);

/// The client of a request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Caller {
    key: Option<Authenticated>,
    visitor: Option<String>,
}

impl Caller {
    /// A caller with this key (tests, and whoever authenticated otherwise).
    pub fn with_key(key: Authenticated) -> Caller {
        Caller {
            key: Some(key),
            visitor: None,
        }
    }

    /// The valid key the request presented, if any.
    pub fn key(&self) -> Option<&Authenticated> {
        self.key.as_ref()
    }

    pub fn key_id(&self) -> Option<&str> {
        self.key.as_ref().map(|k| k.id.as_str())
    }

    /// The visitor cookie of the browser form, when it holds a visitor id.
    pub fn visitor(&self) -> Option<&str> {
        self.visitor.as_deref()
    }

    /// Whether this caller may see (read, follow, cancel, delete) `job`: a keyed job belongs to
    /// its key alone; every other job is a capability URL, as it always was.
    pub fn may_see(&self, job: &JobRow) -> bool {
        match job.api_key_id.as_deref() {
            None => true,
            Some(owner) => self.key_id() == Some(owner),
        }
    }

    /// Whose jobs `GET /api/jobs` lists: the key's, else the visitor's; None for an anonymous
    /// caller without the cookie.
    pub fn owner(&self) -> Option<Owner<'_>> {
        match (self.key_id(), self.visitor()) {
            (Some(key), _) => Some(Owner::Key(key)),
            (None, Some(visitor)) => Some(Owner::Visitor(visitor)),
            (None, None) => None,
        }
    }
}

/// When this process last wrote each key's `last_used_at`, so a busy key costs one write a
/// minute, not one per request. A few hundred keys make a few hundred entries.
#[derive(Debug, Default)]
pub struct KeyUse {
    written: Mutex<HashMap<String, Instant>>,
}

impl KeyUse {
    /// Whether key `id`'s use should be written now (and, if so, it counts as written).
    fn due(&self, id: &str) -> bool {
        let mut written = self.written.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        match written.get(id) {
            Some(at) if now.duration_since(*at) < LAST_USED_EVERY => false,
            _ => {
                written.insert(id.to_owned(), now);
                true
            }
        }
    }
}

/// The key of the request's `Authorization` header: None without the header; Err when the
/// header is there but does not hold `Bearer <token>` (twice, not text, another scheme).
fn bearer(req: &HttpRequest) -> Result<Option<String>, Unauthenticated> {
    let mut values = req.headers().get_all(header::AUTHORIZATION);
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(Unauthenticated::Malformed);
    }
    let value = value.to_str().map_err(|_| Unauthenticated::Malformed)?;
    let (scheme, token) = value
        .trim()
        .split_once(' ')
        .ok_or(Unauthenticated::Malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(Unauthenticated::Malformed);
    }
    Ok(Some(token.trim().to_owned()))
}

/// The visitor id of the form's cookie, when it is one (a UUID).
fn visitor_cookie(req: &HttpRequest) -> Option<String> {
    req.cookie(VISITOR_COOKIE)
        .map(|c| c.value().to_owned())
        .filter(|v| uuid::Uuid::parse_str(v).is_ok())
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Caller, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let visitor = visitor_cookie(req);
        let api = req.path().starts_with("/api/");
        let presented = bearer(req);
        Box::pin(async move {
            let state = state.ok_or_else(|| {
                ApiError::unexpected(std::io::Error::other("no application state"))
            })?;
            let mode = state.config.clients.api_keys;
            let presented = match (mode, presented) {
                (ApiKeys::Off, _) => None,
                (_, Err(why)) => return Err(refused(why)),
                (ApiKeys::Required, Ok(None)) if api => {
                    return Err(refused(Unauthenticated::Missing));
                }
                (_, Ok(presented)) => presented,
            };
            let key = match presented {
                None => None,
                Some(token) => Some(authenticate(&state, &token).await?),
            };
            Ok(Caller { key, visitor })
        })
    }
}

/// A 401, its reason logged (never the key).
fn refused(why: Unauthenticated) -> ApiError {
    tracing::info!(reason = ?why, "request refused: not authenticated");
    ApiError::Unauthorized(why)
}

/// The key `token` names, if valid; its use recorded (at most once a minute per process).
async fn authenticate(state: &AppState, token: &str) -> Result<Authenticated, ApiError> {
    match keys::authenticate(state.db(), token).await? {
        Auth::Valid(key) => {
            if state.key_use.due(&key.id) {
                let (db, id) = (state.db().clone(), key.id.clone());
                tokio::spawn(async move {
                    if let Err(e) = keys::touch(&db, &id).await {
                        tracing::warn!(key_id = %id, error = %e, "last use of an API key not recorded");
                    }
                });
            }
            Ok(key)
        }
        Auth::Malformed => Err(refused(Unauthenticated::Malformed)),
        Auth::Unknown | Auth::Revoked => Err(refused(Unauthenticated::Invalid)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn only_bearer_and_a_token_is_a_presented_key() {
        let with = |value: &str| {
            bearer(
                &TestRequest::default()
                    .insert_header((header::AUTHORIZATION, value))
                    .to_http_request(),
            )
        };
        assert_eq!(bearer(&TestRequest::default().to_http_request()), Ok(None));
        assert_eq!(with("Bearer sq_abc"), Ok(Some("sq_abc".into())));
        assert_eq!(with("bearer   sq_abc "), Ok(Some("sq_abc".into())));
        for bad in ["Basic dXNlcjpwYXNz", "Bearer", "sq_abc", "Token sq_abc"] {
            assert_eq!(with(bad), Err(Unauthenticated::Malformed), "{bad:?}");
        }
        let twice = TestRequest::default()
            .append_header((header::AUTHORIZATION, "Bearer a"))
            .append_header((header::AUTHORIZATION, "Bearer b"))
            .to_http_request();
        assert_eq!(bearer(&twice), Err(Unauthenticated::Malformed));
    }

    #[test]
    fn a_key_is_seen_only_by_its_owner_and_other_jobs_by_anyone() {
        let key = |id: &str| Authenticated {
            id: id.into(),
            name: id.into(),
            limits: keys::Limits::default(),
        };
        let a = Caller::with_key(key("a"));
        let b = Caller::with_key(key("b"));
        let nobody = Caller::default();
        let owned_by = |owner: Option<&str>| owner.map(str::to_owned);
        let may = |caller: &Caller, owner: Option<&str>| {
            let mut job = crate::jobs::model::tests::row();
            job.api_key_id = owned_by(owner);
            caller.may_see(&job)
        };
        assert!(may(&a, Some("a")));
        assert!(!may(&b, Some("a")));
        assert!(!may(&nobody, Some("a")));
        assert!(may(&a, None) && may(&b, None) && may(&nobody, None));
    }

    #[test]
    fn a_key_is_written_as_used_once_a_minute_at_most() {
        let uses = KeyUse::default();
        assert!(uses.due("a"));
        assert!(!uses.due("a"));
        assert!(uses.due("b"));
    }
}
