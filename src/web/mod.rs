//! The HTTP layer: the JSON API ([`api`]), the pages ([`pages`]) and their shared pieces.

pub mod api;
pub mod charts;
pub mod errors;
pub mod input;
pub mod pages;

use actix_web::{HttpResponse, web};
use uuid::Uuid;

use crate::config::Config;
use crate::db::Db;
use crate::jobs::model::{self, NewJob};
use crate::jobs::worker::Deps;
use errors::ApiError;
use input::Submission;

/// Shared by every handler.
#[derive(Clone, Debug)]
pub struct AppState {
    pub config: Config,
    pub deps: Deps,
}

impl AppState {
    pub fn db(&self) -> &Db {
        &self.deps.db
    }
}

/// Write the job row and its queue entry, together with the submissions that arrive at the same
/// time ([`crate::jobs::submitter`]).
pub async fn submit(
    state: &AppState,
    submission: Submission,
    visitor: Option<String>,
) -> Result<Uuid, ApiError> {
    let job = NewJob {
        id: Uuid::new_v4(),
        visitor,
        queue: state.config.queue_for(submission.input.len()),
        format: submission.format,
        column: submission.column,
        title: submission.title,
        input: submission.input,
    };
    let (id, queue, input_bytes, format) = (job.id, job.queue, job.input.len(), job.format);
    state.deps.submitter.submit(job).await?;
    tracing::info!(job_id = %id, queue, input_bytes, format = model::format_name(format), "job queued");
    Ok(id)
}

/// A job id from the path: anything but a UUID is simply not found.
pub fn parse_id(raw: &str) -> Result<String, ApiError> {
    Uuid::parse_str(raw)
        .map(|u| u.to_string())
        .map_err(|_| ApiError::NotFound)
}

/// The routes of the whole app.
pub fn routes(cfg: &mut web::ServiceConfig) {
    // A query string that does not fit (e.g. `?column=a&column=b`) gets the JSON error body,
    // not actix's plain-text one.
    cfg.app_data(
        web::QueryConfig::default()
            .error_handler(|e, _| ApiError::BadRequest(format!("bad query string: {e}")).into()),
    )
    .route("/healthz", web::get().to(api::healthz))
    .route("/readyz", web::get().to(api::readyz))
    .route("/metrics", web::get().to(api::metrics))
    .route("/api/openapi.json", web::get().to(pages::openapi))
    .route("/api/jobs", web::post().to(api::create_job))
    .route("/api/jobs/{id}", web::get().to(api::get_job))
    .route("/api/jobs/{id}/cancel", web::post().to(api::cancel_job))
    .route("/api/jobs/{id}/events", web::get().to(api::job_events))
    .route("/api/jobs/{id}/items.csv", web::get().to(api::items_csv))
    .route(
        "/api/jobs/{id}/items.jsonl",
        web::get().to(api::items_jsonl),
    )
    .route("/", web::get().to(pages::index))
    .route("/analyses", web::post().to(pages::create))
    .route("/analyses/{id}", web::get().to(pages::status))
    .route("/analyses/{id}/cancel", web::post().to(pages::cancel))
    .route("/static/app.css", web::get().to(pages::css))
    .route("/static/app.js", web::get().to(pages::js))
    .default_service(web::to(not_found));
}

async fn not_found(req: actix_web::HttpRequest) -> HttpResponse {
    if req.path().starts_with("/api/") {
        actix_web::ResponseError::error_response(&ApiError::NotFound)
    } else {
        pages::not_found_page()
    }
}
