//! One log line per request, and a request id on every line logged while it is handled.
//!
//! The id is the caller's `X-Request-Id` when it looks like one (Heroku's router sets it, so the
//! router's log and ours share it), otherwise a new UUID. It is sent back in `X-Request-Id`, so
//! a person reporting a problem can quote it. Handlers run inside a `request` span carrying the
//! id: everything they log (and the JSON format's `span` field) names the request. The same
//! place counts the request in the metrics, by route pattern, method and status. Only the
//! method, the path (without its query string), the status and the time are logged: never
//! bodies, headers or query strings, which may hold texts or secrets.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use tracing::Instrument;

/// The request id header, in and out.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A caller's id is kept when it is 1 to 200 characters of letters, digits and `-_.:`; anything
/// else (which could forge log lines or be used to flood them) is replaced.
fn acceptable(id: &str) -> bool {
    (1..=200).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// actix-web middleware (use with `actix_web::middleware::from_fn`).
pub async fn log_request(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| acceptable(v))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let span = tracing::info_span!("request", request_id = %id);
    let metrics = req
        .app_data::<actix_web::web::Data<super::AppState>>()
        .map(|state| state.deps.metrics.clone());
    let method = req.method().clone();
    let path = req.path().to_owned();
    let started = Instant::now();
    let result = next.call(req).instrument(span.clone()).await;
    let seconds = started.elapsed().as_secs_f64();
    let duration_ms = seconds * 1000.0;
    let _in_request = span.enter();
    match result {
        Ok(mut res) => {
            let status = res.status().as_u16();
            if let Some(m) = &metrics {
                // Unrouted paths share one label: every probe of a random URL is not a series.
                let route = res.request().match_pattern();
                m.http(
                    route.as_deref().unwrap_or("(unmatched)"),
                    method.as_str(),
                    status,
                    seconds,
                );
            }
            if let Ok(value) = HeaderValue::from_str(&id) {
                res.headers_mut().insert(REQUEST_ID, value);
            }
            if status >= 500 {
                tracing::warn!(%method, path, status, duration_ms, "request answered");
            } else {
                tracing::info!(%method, path, status, duration_ms, "request answered");
            }
            Ok(res)
        }
        Err(e) => {
            let status = e.as_response_error().status_code().as_u16();
            tracing::info!(%method, path, status, duration_ms, "request answered with an error");
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::acceptable;

    #[test]
    fn caller_request_ids_are_kept_only_when_they_are_plain() {
        assert!(acceptable("f0e1d2c3-a4b5-4c6d-8e7f-0123456789ab"));
        assert!(acceptable("router.abc:123_x"));
        assert!(!acceptable(""));
        assert!(!acceptable("has space"));
        assert!(!acceptable("line\nbreak"));
        assert!(!acceptable(&"a".repeat(201)));
    }
}
