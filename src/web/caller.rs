//! Who is calling: the [`Caller`] extractor. Every handler that reads or changes jobs takes one,
//! so authentication happens in one place and a handler only ever sees a valid caller.
//!
//! A caller is a valid API key (`Authorization: Bearer sq_…`, checked against the database, or
//! on PostgreSQL against this process's [`KeyCache`], which the database empties of a key the
//! moment it is revoked), or nobody; either way with the visitor cookie of the browser form when
//! the browser sent one. `API_KEYS` decides
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
use std::sync::{Arc, Mutex};
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

/// How long this process trusts a key it authenticated without reading its row again, should a
/// change of the key ever go unannounced.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(60);
/// Most keys cached; past it the cache starts again (a few hundred keys is the expected case).
const KEY_CACHE_MAX: usize = 10_000;
/// The PostgreSQL channel a trigger notifies with a key's id when the key is revoked, deleted or
/// its limits change (migration `key_changes_notify`).
pub const KEY_CHANGES_CHANNEL: &str = "sentiq_keys";

/// The keys this web process authenticated lately, so a keyed request on PostgreSQL costs no
/// database read (one read doubled `serve`'s CPU per submission, BENCHMARKS.md). Correctness
/// rests on the database: a trigger notifies [`KEY_CHANGES_CHANNEL`] when a key is revoked or
/// changed, whichever process did it (the dashboard, `sentiq keys revoke`, SQL), and
/// [`listen_for_key_changes`] drops that key from the cache. The cache is used only while that
/// listener is connected: lost notifications (a dropped connection) empty it, and until the
/// listener is back every request reads the row. A generation number keeps a read that raced
/// with a revocation out of the cache. SQLite reads its row in process and is not cached.
#[derive(Debug, Default)]
pub struct KeyCache {
    state: Mutex<CacheState>,
}

#[derive(Debug, Default)]
struct CacheState {
    /// The listener is connected and listening: notifications reach this cache.
    live: bool,
    /// Bumped by every invalidation, so a read that started before one is not cached after it.
    generation: u64,
    entries: HashMap<[u8; 32], (Authenticated, Instant)>,
}

impl KeyCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, CacheState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The key whose SHA-256 is `digest`, if cached, fresh and the cache is live.
    pub fn get(&self, digest: &[u8; 32]) -> Option<Authenticated> {
        let state = self.lock();
        if !state.live {
            return None;
        }
        let (key, at) = state.entries.get(digest)?;
        (at.elapsed() < KEY_CACHE_TTL).then(|| key.clone())
    }

    /// The generation a read starts in; None: the cache is not live (do not cache the read).
    pub fn generation(&self) -> Option<u64> {
        let state = self.lock();
        state.live.then_some(state.generation)
    }

    /// Cache `key`, read in `generation`, unless something was invalidated since.
    pub fn put(&self, digest: [u8; 32], key: Authenticated, generation: u64) {
        let mut state = self.lock();
        if !state.live || state.generation != generation {
            return;
        }
        if state.entries.len() >= KEY_CACHE_MAX {
            state.entries.clear();
        }
        state.entries.insert(digest, (key, Instant::now()));
    }

    /// Key `id` changed: forget it.
    pub fn forget(&self, id: &str) {
        let mut state = self.lock();
        state.generation += 1;
        state.entries.retain(|_, (key, _)| key.id != id);
    }

    /// The listener connected (`true`) or lost its connection (`false`): either way whatever
    /// is cached may have missed a notification.
    pub fn set_live(&self, live: bool) {
        let mut state = self.lock();
        state.generation += 1;
        state.entries.clear();
        state.live = live;
    }
}

/// Keep `cache` in step with the keys' changes on PostgreSQL, until aborted: listen on
/// [`KEY_CHANGES_CHANNEL`], forget each key named, and empty the cache (and stop using it)
/// whenever the connection is lost, until listening again.
pub async fn listen_for_key_changes(cache: Arc<KeyCache>, pool: sqlx::PgPool) {
    loop {
        let mut listener = match sqlx::postgres::PgListener::connect_with(&pool).await {
            Ok(listener) => listener,
            Err(e) => {
                tracing::warn!(error = %e, "API key changes not followed (no connection); keys are read on every request meanwhile");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if let Err(e) = listener.listen(KEY_CHANGES_CHANNEL).await {
            tracing::warn!(error = %e, "API key changes not followed (LISTEN failed); keys are read on every request meanwhile");
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        cache.set_live(true);
        loop {
            match listener.try_recv().await {
                Ok(Some(notification)) => cache.forget(notification.payload()),
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "API key changes no longer followed; reconnecting");
                    break;
                }
            }
        }
        cache.set_live(false);
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
    let digest = keys::hash(token);
    if let Some(key) = state.key_cache.get(&digest) {
        record_use(state, &key);
        return Ok(key);
    }
    let generation = state.key_cache.generation();
    match keys::authenticate(state.db(), token).await? {
        Auth::Valid(key) => {
            if let Some(generation) = generation {
                state.key_cache.put(digest, key.clone(), generation);
            }
            record_use(state, &key);
            Ok(key)
        }
        Auth::Malformed => Err(refused(Unauthenticated::Malformed)),
        Auth::Unknown | Auth::Revoked => Err(refused(Unauthenticated::Invalid)),
    }
}

/// Write key `key`'s last use, at most once a minute per process, in the background.
fn record_use(state: &AppState, key: &Authenticated) {
    if state.key_use.due(&key.id) {
        let (db, id) = (state.db().clone(), key.id.clone());
        tokio::spawn(async move {
            if let Err(e) = keys::touch(&db, &id).await {
                tracing::warn!(key_id = %id, error = %e, "last use of an API key not recorded");
            }
        });
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
    fn the_key_cache_serves_only_while_live_and_forgets_a_changed_key_and_a_raced_read() {
        let key = |id: &str| Authenticated {
            id: id.into(),
            name: id.into(),
            limits: keys::Limits::default(),
        };
        let cache = KeyCache::default();
        let (a, b) = ([1u8; 32], [2u8; 32]);
        // Not live: nothing is cached or served.
        assert_eq!(cache.generation(), None);
        cache.put(a, key("a"), 0);
        assert_eq!(cache.get(&a), None);
        cache.set_live(true);
        let generation = cache.generation().unwrap();
        cache.put(a, key("a"), generation);
        cache.put(b, key("b"), generation);
        assert_eq!(cache.get(&a).map(|k| k.id), Some("a".into()));
        // A changed key is forgotten, the others stay.
        cache.forget("a");
        assert_eq!(cache.get(&a), None);
        assert_eq!(cache.get(&b).map(|k| k.id), Some("b".into()));
        // A read that began before an invalidation is not cached after it.
        let before = cache.generation().unwrap();
        cache.forget("c");
        cache.put(a, key("a"), before);
        assert_eq!(cache.get(&a), None);
        // A lost connection empties the cache and stops its use.
        cache.set_live(false);
        assert_eq!(cache.get(&b), None);
        assert_eq!(cache.generation(), None);
    }

    #[test]
    fn a_key_is_written_as_used_once_a_minute_at_most() {
        let uses = KeyUse::default();
        assert!(uses.due("a"));
        assert!(!uses.due("a"));
        assert!(uses.due("b"));
    }
}
