//! One error type for the HTTP layer: every variant maps to a status and a stable code, and is
//! answered as `{"error": {"code": "...", "message": "..."}}`. Unexpected errors are opaque 500s
//! whose cause is logged once.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::analysis::AnalysisError;
use crate::jobs::model::PurgeReason;

fn gone_message(reason: PurgeReason) -> &'static str {
    match reason {
        PurgeReason::Expired => {
            "this job's results expired and were removed, with its input; submit the text again \
             to analyse it again"
        }
        PurgeReason::Deleted => "this job was deleted: its input and results were removed",
    }
}

/// Why a request is not authenticated (401 `unauthorized`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unauthenticated {
    /// No key, where one is needed (`API_KEYS=required`).
    Missing,
    /// No key and no visitor cookie: nothing names the caller's jobs.
    NoOwner,
    /// An `Authorization` header that is not `Bearer` and a key.
    Malformed,
    /// A key no one holds, or one that was revoked.
    Invalid,
}

impl Unauthenticated {
    fn message(self) -> &'static str {
        match self {
            Unauthenticated::Missing => {
                "this API needs an API key: send it as Authorization: Bearer <key>"
            }
            Unauthenticated::NoOwner => {
                "listing jobs needs an API key (Authorization: Bearer <key>) or the visitor \
                 cookie of the browser form"
            }
            Unauthenticated::Malformed => {
                "the Authorization header does not hold an API key: send Authorization: Bearer \
                 sq_ followed by the 43 characters of the key"
            }
            Unauthenticated::Invalid => "this API key is unknown or has been revoked",
        }
    }

    /// The `WWW-Authenticate` challenge (RFC 6750): a refused credential says
    /// `error="invalid_token"`; a missing one only names the scheme.
    pub fn challenge(self) -> &'static str {
        match self {
            Unauthenticated::Missing | Unauthenticated::NoOwner => "Bearer realm=\"sentiq\"",
            Unauthenticated::Malformed | Unauthenticated::Invalid => {
                "Bearer realm=\"sentiq\", error=\"invalid_token\""
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("the request body is larger than the {limit}-byte limit")]
    PayloadTooLarge { limit: usize },
    #[error("{0}")]
    EmptyInput(String),
    /// The client sent its body slower than [`super::slow_body`] allows.
    #[error("{}", super::slow_body::TooSlow)]
    BodyTooSlow,
    #[error("{0}")]
    InvalidJson(String),
    #[error("{0}")]
    MissingField(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    InvalidUtf8(String),
    #[error("{message}")]
    Unprocessable { code: &'static str, message: String },
    #[error("{0}")]
    BadRequest(String),
    /// A 400 with its own code (a malformed header).
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    #[error("a request with this Idempotency-Key is still being processed; try again in a moment")]
    IdempotencyKeyInUse,
    /// A `Prefer` header whose `wait` is not a whole number of seconds in range.
    #[error("{0}")]
    BadPrefer(String),
    #[error("too many submissions from your address; please try again in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    /// Over the submission rate of the API key (its own, or the server's default).
    #[error("too many submissions with this API key; please try again in {retry_after_secs} s")]
    KeyRateLimited { retry_after_secs: u64 },
    #[error("{}", .0.message())]
    Unauthorized(Unauthenticated),
    #[error("no job with this id")]
    NotFound,
    /// The job is a tombstone: its data expired, or was deleted.
    #[error("{}", gone_message(*.0))]
    Gone(PurgeReason),
    #[error("{method} is not allowed here: use {allow}")]
    MethodNotAllowed { method: String, allow: &'static str },
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// As many requests wait (`Prefer: wait`) as this process allows.
    #[error("too many requests are waiting on this server; please try again in a few seconds")]
    TooManyWaiters,
    /// As many event streams are open as this process allows.
    #[error(
        "this server has as many event streams open as it allows ({max}); poll \
         GET /api/jobs/{{id}} (with If-None-Match) instead, or try again later"
    )]
    TooManyStreams { max: usize },
    /// The process is at a cap of its load: the request bodies in memory are at its budget
    /// ([`super::upload::Budget`]), or it works on as many submissions as it allows
    /// ([`super::submit`]).
    #[error(
        "the server is taking as much work as it can right now; please send this again in \
         {retry_after_secs} s"
    )]
    Overloaded { retry_after_secs: u64 },
    /// The database's disk is full: nothing can be written until an operator makes room.
    #[error(
        "this server's storage is full, so it cannot take new work right now; nothing was \
         saved. Jobs already submitted can still be read. Please try again later"
    )]
    StorageFull(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("the service is briefly unavailable; please try again in a few seconds")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("something went wrong on our side; please try again")]
    Unexpected(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::EmptyInput(_) => "empty_input",
            ApiError::BodyTooSlow => "body_too_slow",
            ApiError::InvalidJson(_) => "invalid_json",
            ApiError::MissingField(_) => "missing_field",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::InvalidUtf8(_) => "invalid_utf8",
            ApiError::Unprocessable { code, .. } => code,
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Invalid { code, .. } => code,
            ApiError::IdempotencyKeyInUse => "idempotency_key_in_use",
            ApiError::BadPrefer(_) => "bad_prefer",
            ApiError::RateLimited { .. } | ApiError::KeyRateLimited { .. } => "rate_limited",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::NotFound => "not_found",
            ApiError::Gone(reason) => reason.as_str(),
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::Conflict { code, .. } => code,
            ApiError::TooManyWaiters => "too_many_waiters",
            ApiError::TooManyStreams { .. } => "too_many_streams",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::StorageFull(_) => "storage_full",
            ApiError::Overloaded { .. } => "overloaded",
            ApiError::Unexpected(_) => "internal",
        }
    }

    pub fn unexpected(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        ApiError::Unexpected(Box::new(e))
    }
}

/// Seconds a client is asked to wait after a 503.
pub const RETRY_AFTER_UNAVAILABLE: &str = "2";
/// Seconds a client is asked to wait when the disk is full: room comes back by an operator's
/// hand (or the pruner), not in a moment.
pub const RETRY_AFTER_STORAGE_FULL: &str = "60";

impl ApiError {
    /// A request body that could not be read: 408 when its client was too slow, else 400
    /// saying what was being read.
    pub fn unreadable(what: &str, e: &(dyn std::error::Error + 'static)) -> ApiError {
        if super::slow_body::is_too_slow(e) {
            ApiError::BodyTooSlow
        } else {
            ApiError::BadRequest(format!("{what} could not be read: {e}"))
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        if crate::db::is_storage_full(&e) {
            ApiError::StorageFull(Box::new(e))
        } else if crate::db::is_unavailable(&e) {
            ApiError::Unavailable(Box::new(e))
        } else {
            ApiError::unexpected(e)
        }
    }
}

impl From<crate::jobs::store::StoreError> for ApiError {
    fn from(e: crate::jobs::store::StoreError) -> Self {
        if e.is_storage_full() {
            ApiError::StorageFull(Box::new(e))
        } else if e.is_unavailable() {
            ApiError::Unavailable(Box::new(e))
        } else {
            ApiError::unexpected(e)
        }
    }
}

impl From<AnalysisError> for ApiError {
    fn from(e: AnalysisError) -> Self {
        match e {
            AnalysisError::InvalidUtf8 { .. } => ApiError::InvalidUtf8(e.to_string()),
            AnalysisError::Empty => ApiError::EmptyInput(e.to_string()),
            e if e.is_bad_input() => ApiError::Unprocessable {
                code: e.code(),
                message: e.to_string(),
            },
            e => ApiError::unexpected(e),
        }
    }
}

impl From<crate::webhooks::address::Refusal> for ApiError {
    fn from(e: crate::webhooks::address::Refusal) -> Self {
        use crate::webhooks::address::Refusal;
        let code = match &e {
            Refusal::Invalid(_) => "invalid_webhook_url",
            Refusal::NotPublic(_) => "webhook_url_refused",
        };
        ApiError::Unprocessable {
            code,
            message: e.to_string(),
        }
    }
}

/// Every error answer of the JSON API.
/// An error and every cause under it, `outer: inner: innermost`, for the one log line of a
/// failed request (the client sees only the opaque message).
pub fn cause_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        // thiserror's `#[error("...: {0}")]` already shows its source; do not say it twice.
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody<'a> {
    pub error: ErrorDetail<'a>,
}

/// What went wrong: a stable machine-readable `code` and a `message` a person can read.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail<'a> {
    /// Stable, e.g. `invalid_json`, `missing_field`, `invalid_utf8`, `empty_input`,
    /// `payload_too_large`, `body_too_slow`, `unsupported_media_type`, `rate_limited`, `unauthorized`,
    /// `not_found`,
    /// `already_final`, `not_succeeded`, `expired` and `deleted` (410: the job's data was
    /// removed), `invalid_idempotency_key`, `idempotency_key_reused`, `idempotency_key_in_use`,
    /// `bad_prefer`, `too_many_waiters`, `too_many_streams`, `overloaded`, `storage_full`, `unavailable`, `not_ready`, `invalid_webhook_url`,
    /// `webhook_url_refused`, `webhooks_not_configured`, `invalid_cursor`, `invalid_limit`,
    /// `invalid_status`, `invalid_date`, `unknown_parameter`.
    pub code: &'a str,
    pub message: &'a str,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::EmptyInput(_) | ApiError::Unprocessable { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::InvalidJson(_)
            | ApiError::MissingField(_)
            | ApiError::InvalidUtf8(_)
            | ApiError::BadRequest(_)
            | ApiError::Invalid { .. }
            | ApiError::BadPrefer(_) => StatusCode::BAD_REQUEST,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::BodyTooSlow => StatusCode::REQUEST_TIMEOUT,
            ApiError::RateLimited { .. } | ApiError::KeyRateLimited { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::Gone(_) => StatusCode::GONE,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict { .. } | ApiError::IdempotencyKeyInUse => StatusCode::CONFLICT,
            ApiError::Unavailable(_)
            | ApiError::StorageFull(_)
            | ApiError::TooManyWaiters
            | ApiError::TooManyStreams { .. }
            | ApiError::Overloaded { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Unexpected(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            ApiError::Unexpected(cause) => {
                tracing::error!(error = %cause_chain(cause.as_ref()), "request failed")
            }
            ApiError::Unavailable(cause) => {
                tracing::warn!(error = %cause_chain(cause.as_ref()), "request refused: unavailable")
            }
            ApiError::StorageFull(cause) => {
                tracing::error!(error = %cause_chain(cause.as_ref()), "request refused: the database's storage is full")
            }
            _ => {}
        }
        let message = self.to_string();
        let mut response = HttpResponse::build(self.status_code());
        match self {
            ApiError::Unavailable(_)
            | ApiError::TooManyWaiters
            | ApiError::TooManyStreams { .. } => {
                response.insert_header(("Retry-After", RETRY_AFTER_UNAVAILABLE));
            }
            ApiError::StorageFull(_) => {
                response.insert_header(("Retry-After", RETRY_AFTER_STORAGE_FULL));
            }
            ApiError::IdempotencyKeyInUse => {
                response.insert_header(("Retry-After", "1"));
            }
            ApiError::RateLimited { retry_after_secs }
            | ApiError::KeyRateLimited { retry_after_secs }
            | ApiError::Overloaded { retry_after_secs } => {
                response.insert_header(("Retry-After", retry_after_secs.to_string()));
            }
            ApiError::MethodNotAllowed { allow, .. } => {
                response.insert_header(("Allow", *allow));
            }
            ApiError::Unauthorized(why) => {
                response.insert_header(("WWW-Authenticate", why.challenge()));
            }
            // The rest of the body is not read: the connection cannot carry another request.
            ApiError::BodyTooSlow => {
                response.insert_header(("Connection", "close"));
            }
            _ => {}
        }
        response
            .insert_header(("Cache-Control", "no-store"))
            .json(ErrorBody {
                error: ErrorDetail {
                    code: self.code(),
                    message: &message,
                },
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("reading the job")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn the_logged_cause_names_every_layer_once() {
        let inner = std::io::Error::other("connection reset");
        assert_eq!(
            cause_chain(&Outer(inner)),
            "reading the job: connection reset"
        );
        let store = crate::jobs::store::StoreError::Db(sqlx::Error::PoolTimedOut);
        let text = cause_chain(&store);
        assert_eq!(text.matches("pool timed out").count(), 1, "{text}");
    }
}
