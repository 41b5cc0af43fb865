//! The operator dashboard at `/admin`: queue depths, the workers alive and their last heartbeat,
//! the throughput of the last hour, recent failures with a Retry button, open jobs with a
//! Cancel button and failing webhook deliveries with a Send again button; and, at
//! `/admin/keys`, the API keys with their usage, a form that makes one and a Revoke button.
//!
//! It exists only when `ADMIN_TOKEN` is set: otherwise every `/admin…` path answers exactly as
//! an unknown page does, so a deployment without it does not even reveal it. With the token,
//! every `/admin…` request must present it, as `Authorization: Bearer <token>` or as the
//! password of HTTP Basic (any user name, so a browser's own login prompt works); anything
//! else is a 401 that asks for Basic credentials.
//!
//! Browsers send Basic credentials with every request to the site, including forms posted from
//! other sites, so every action also needs the page's CSRF token (an HMAC of a fixed message
//! keyed with the admin token: only someone who knows the token can compute it) and must not
//! come from another site (`Sec-Fetch-Site`, `Origin`).
//!
//! How the parts fit: this module routes every `/admin…` request through [`guard`], which asks
//! [`auth`] whether the request presents the token, so no handler behind it checks again.
//! [`dashboard`] reads the figures and renders the page, whose forms carry
//! [`auth::csrf_token`]; [`actions`] checks that token ([`auth::forbidden_reason`]) before it
//! retries or cancels a job, and answers with a redirect back to the dashboard or a short
//! message page.

mod actions;
mod auth;
mod dashboard;
mod keys;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{StatusCode, header};
use actix_web::middleware::{Next, from_fn};
use actix_web::{HttpResponse, web};

use super::{AppState, pages, respond};

pub use actions::retry_job;
pub use auth::csrf_token;

/// The realm a browser shows in its login prompt.
const REALM: &str = "sentiq admin";
/// The target of every log line of the dashboard, as it was before the module was split, so
/// filters and searches for `sentiq::web::admin` keep finding them.
const LOG_TARGET: &str = module_path!();
/// Search engines must not list the dashboard even if a link to it leaks.
const NOINDEX: (&str, &str) = ("X-Robots-Tag", "noindex");

static CSS: &str = include_str!("../../../static/admin.css");

/// The `/admin` routes, all behind [`guard`].
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/admin")
            .wrap(from_fn(guard))
            .route("", web::get().to(dashboard::dashboard))
            .route("/", web::get().to(dashboard::dashboard))
            .route("/static/admin.css", web::get().to(css))
            .route("/jobs/{id}/retry", web::post().to(actions::retry))
            .route("/jobs/{id}/cancel", web::post().to(actions::cancel))
            .route("/webhooks/{id}/send", web::post().to(actions::send_again))
            .route("/keys", web::get().to(keys::page))
            .route("/keys", web::post().to(keys::create))
            .route("/keys/{id}/revoke", web::post().to(keys::revoke))
            .default_service(web::to(unknown)),
    );
}

/// In front of every `/admin…` request, whatever its path or method: no token configured →
/// the site's ordinary 404; no or a wrong token presented → 401.
async fn guard(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let token = req
        .app_data::<web::Data<AppState>>()
        .and_then(|s| s.config.security.admin_token.clone());
    let token = token.as_ref().map(|t| t.expose());
    let refused = match token {
        None => Some(pages::not_found_page()),
        Some(token) if !auth::authorized(req.headers(), token) => Some(unauthorized()),
        Some(_) => None,
    };
    match refused {
        Some(response) => Ok(req.into_response(response).map_into_right_body()),
        None => next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body),
    }
}

fn unauthorized() -> HttpResponse {
    HttpResponse::Unauthorized()
        .insert_header((
            header::WWW_AUTHENTICATE,
            format!("Basic realm=\"{REALM}\", charset=\"UTF-8\""),
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .content_type("text/plain; charset=utf-8")
        .body("The operator dashboard needs the admin token (ADMIN_TOKEN): as a Bearer token, or as the password of HTTP Basic.\n")
}

/// A dashboard page as [`respond::html`] serves it, kept out of search engines.
fn page(status: StatusCode, body: Result<String, askama::Error>) -> HttpResponse {
    respond::html_with(status, body, &[NOINDEX])
}

async fn unknown() -> HttpResponse {
    actions::message(
        StatusCode::NOT_FOUND,
        "Not found",
        "There is nothing at this address of the dashboard.",
    )
}

/// `private`: only the operator's own browser may keep it, not a shared cache.
async fn css() -> HttpResponse {
    respond::asset("text/css; charset=utf-8", "private, max-age=3600", CSS)
}
