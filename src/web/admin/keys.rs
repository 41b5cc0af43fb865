//! `/admin/keys`: the API keys with their usage, a form that makes a key (the answer shows it,
//! once), and a Revoke button per active key. The forms carry the dashboard's CSRF token.
//!
//! A page of its own rather than a part of `/admin`: its usage figures are an aggregate over
//! the keyed job rows, read when the page is opened, and the dashboard refreshes itself every
//! few seconds.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use askama::Template;

use super::actions::message;
use super::auth::{admin_token, csrf_token, forbidden_reason};
use super::dashboard::{bytes_label, retention_label};
use crate::keys::{self, KeyError, Limits, Usage};
use crate::timestamp::Timestamp;
use crate::web::AppState;
use crate::web::errors::ApiError;

/// One key as the page shows it.
struct KeyView {
    id: String,
    name: String,
    prefix: String,
    /// active or revoked.
    state: &'static str,
    created: String,
    created_at: String,
    last_used: String,
    last_used_at: String,
    revoked: String,
    revoked_at: String,
    rate: String,
    max_running: String,
    usage: Usage,
    bytes: String,
}

impl KeyView {
    fn new(k: keys::ApiKey, usage: Usage) -> KeyView {
        let limits = k.limits();
        let or_default =
            |v: Option<u32>, default: &str| v.map_or_else(|| default.to_owned(), |n| n.to_string());
        let stamp = |t: Option<Timestamp>| t.map(|t| t.to_string()).unwrap_or_default();
        KeyView {
            prefix: k.shown_prefix(),
            state: if k.revoked_at.is_some() {
                "revoked"
            } else {
                "active"
            },
            created: k.created_at.clock(),
            created_at: k.created_at.to_string(),
            last_used: k.last_used_at.map(Timestamp::relative).unwrap_or_default(),
            last_used_at: stamp(k.last_used_at),
            revoked: k.revoked_at.map(Timestamp::clock).unwrap_or_default(),
            revoked_at: stamp(k.revoked_at),
            rate: match limits.rate_per_minute {
                Some(0) => "no limit".to_owned(),
                other => or_default(other, "default"),
            },
            max_running: or_default(limits.max_running, "no cap"),
            bytes: bytes_label(usage.bytes),
            usage,
            id: k.id,
            name: k.name,
        }
    }
}

#[derive(Template)]
#[template(path = "admin_keys.html")]
struct KeysPage {
    csrf: String,
    generated_at: String,
    keys: Vec<KeyView>,
    active: usize,
    retention: String,
    default_rate: u32,
    max_name: usize,
}

#[derive(Template)]
#[template(path = "admin_key_created.html")]
struct CreatedPage<'a> {
    name: &'a str,
    secret: &'a str,
    prefix: &'a str,
    limits: &'a str,
}

/// `GET /admin/keys`.
pub(super) async fn page(state: web::Data<AppState>) -> HttpResponse {
    let db = state.db();
    let (list, usage) = tokio::join!(keys::list(db), keys::usage(db));
    let (list, mut usage) = match (list, usage) {
        (Ok(list), Ok(usage)) => (list, usage),
        (Err(e), _) | (_, Err(e)) => return ApiError::from(e).error_response(),
    };
    let keys: Vec<KeyView> = list
        .into_iter()
        .map(|k| {
            let used = usage.remove(&k.id).unwrap_or_default();
            KeyView::new(k, used)
        })
        .collect();
    let page = KeysPage {
        csrf: csrf_token(admin_token(&state)),
        generated_at: Timestamp::now().clock(),
        active: keys.iter().filter(|k| k.state == "active").count(),
        keys,
        retention: retention_label(state.deps.store.retention()),
        default_rate: state.config.limits.submit_rate_per_minute,
        max_name: keys::MAX_NAME_LEN,
    };
    super::page(StatusCode::OK, page.render())
}

/// A number field of the form: blank is None.
fn number(fields: &[(String, String)], name: &str, label: &str) -> Result<Option<u32>, String> {
    match fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.trim())
    {
        None | Some("") => Ok(None),
        Some(v) => v
            .parse::<u32>()
            .map(Some)
            .map_err(|_| format!("{label} must be a whole number, not {v:?}.")),
    }
}

/// `POST /admin/keys`: make a key; the answer is the only page that ever shows it.
pub(super) async fn create(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> HttpResponse {
    if let Some(reason) = forbidden_reason(&req, &body, admin_token(&state)) {
        return message(StatusCode::FORBIDDEN, "Refused", reason);
    }
    let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let name = fields
        .iter()
        .find(|(k, _)| k == "name")
        .map(|(_, v)| v.as_str())
        .unwrap_or_default();
    let limits = number(&fields, "rate_per_minute", "Submissions a minute").and_then(|rate| {
        Ok(Limits {
            rate_per_minute: rate,
            max_running: number(&fields, "max_running", "Jobs running at once")?,
        })
    });
    let limits = match limits {
        Ok(limits) => limits,
        Err(why) => return message(StatusCode::UNPROCESSABLE_ENTITY, "No key made", &why),
    };
    match keys::create(state.db(), name, limits).await {
        Ok(created) => {
            tracing::info!(
                target: super::LOG_TARGET,
                key_id = %created.key.id,
                "API key made by an operator"
            );
            let page = CreatedPage {
                name: &created.key.name,
                secret: created.secret.expose(),
                prefix: &created.key.shown_prefix(),
                limits: &created.key.limits().describe(),
            };
            // Not a redirect: the key exists in this answer only (sent with `no-store`).
            super::page(StatusCode::CREATED, page.render())
        }
        Err(e @ KeyError::DuplicateName(_)) => {
            message(StatusCode::CONFLICT, "No key made", &capitalised(&e))
        }
        Err(e @ (KeyError::BadName(_) | KeyError::BadLimit(_))) => message(
            StatusCode::UNPROCESSABLE_ENTITY,
            "No key made",
            &capitalised(&e),
        ),
        Err(KeyError::Db(e)) => ApiError::from(e).error_response(),
        Err(e) => ApiError::unexpected(e).error_response(),
    }
}

/// "A key name may not be blank.": an error as a sentence.
fn capitalised(e: &KeyError) -> String {
    let text = e.to_string();
    let mut chars = text.chars();
    let first = chars.next().map(|c| c.to_uppercase().to_string());
    format!("{}{}.", first.unwrap_or_default(), chars.as_str())
}

/// `POST /admin/keys/{id}/revoke`: refuse the key from its next request on.
pub(super) async fn revoke(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    if let Some(reason) = forbidden_reason(&req, &body, admin_token(&state)) {
        return message(StatusCode::FORBIDDEN, "Refused", reason);
    }
    match keys::revoke_id(state.db(), &path).await {
        Ok(revoked) => {
            tracing::info!(
                target: super::LOG_TARGET,
                key_id = %revoked.key.id,
                "API key revoked by an operator"
            );
            HttpResponse::SeeOther()
                .insert_header((header::LOCATION, "/admin/keys"))
                .finish()
        }
        Err(KeyError::UnknownId) => message(
            StatusCode::NOT_FOUND,
            "No such key",
            "There is no API key with this id.",
        ),
        Err(KeyError::Db(e)) => ApiError::from(e).error_response(),
        Err(e) => ApiError::unexpected(e).error_response(),
    }
}
