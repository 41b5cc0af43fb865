//! The HTTP layer: the JSON API ([`api`]), the pages ([`pages`]) and their shared pieces.

pub mod admin;
pub mod api;
pub mod caller;
pub mod charts;
pub mod csrf;
pub mod downloads;
pub mod errors;
pub mod idempotency;
pub mod input;
pub mod listing;
pub mod openapi;
pub mod pages;
pub mod rate_limit;
pub mod request_log;
pub mod respond;
pub mod slow_body;
pub mod upload;
pub mod wait;

use actix_web::{HttpResponse, web};
use uuid::Uuid;

use crate::config::Config;
use crate::db::Db;
use crate::deps::Deps;
use crate::jobs::idempotency::KeyClaim;
use crate::jobs::model::{self, Cancel, JobInput, JobRow, NewJob};
use crate::jobs::store::Delete;
use crate::jobs::submitter as store;
use caller::Caller;
use errors::ApiError;
use input::Submission;

/// Shared by every handler.
#[derive(Clone, Debug)]
pub struct AppState {
    pub config: Config,
    pub deps: Deps,
    /// Submissions per client (shared by every HTTP worker thread of the process).
    pub submit_limit: std::sync::Arc<rate_limit::SubmitLimit>,
    /// Requests waiting for a job (`Prefer: wait`), under their cap.
    pub waiters: std::sync::Arc<wait::Waiters>,
    /// Event streams open (`GET /api/jobs/{id}/events`), under their own cap.
    pub streams: std::sync::Arc<wait::Waiters>,
    /// When this process last recorded each API key's use.
    pub key_use: std::sync::Arc<caller::KeyUse>,
    /// API keys authenticated lately (PostgreSQL only; see [`caller::KeyCache`]).
    pub key_cache: std::sync::Arc<caller::KeyCache>,
    /// Bytes of request bodies held in memory at once ([`upload::Budget`]).
    pub body_budget: std::sync::Arc<upload::Budget>,
    /// Submissions being worked on ([`admit_submission`]).
    pub submissions: std::sync::Arc<tokio::sync::Semaphore>,
}

/// A place among the submissions this process works on at once, or `503 overloaded` at once.
///
/// Past what the machine sustains, every submission taken makes the others wait longer: the
/// queue for the database grows, and with it every answer's time, until clients time out and
/// send again. Refusing the surplus at once (a 503 costs a small fraction of a submission)
/// keeps the ones taken fast, and tells the others when to come back. The place is taken once
/// the body has been read and checked, and held while the job is written: a client that sends
/// its body slowly must not hold one (its body is paced and budgeted instead).
fn admit_submission(state: &AppState) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
    state
        .submissions
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError::Overloaded {
            retry_after_secs: BUSY_RETRY_AFTER_SECS,
        })
}

/// Seconds a submission refused for load is asked to wait.
pub const BUSY_RETRY_AFTER_SECS: u64 = 1;

impl AppState {
    pub fn db(&self) -> &Db {
        self.deps.db()
    }
}

/// What a submission answers: a new job, or the job an earlier request with the same
/// idempotency key made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Submitted {
    Created(Uuid),
    Replayed(Uuid),
}

impl Submitted {
    pub fn id(self) -> Uuid {
        match self {
            Submitted::Created(id) | Submitted::Replayed(id) => id,
        }
    }
}

/// The job row's `analysis_options`: the named columns beyond the text one, or None.
fn options_json(fields: &crate::analysis::input::Fields) -> Result<Option<String>, ApiError> {
    if fields.only_text() {
        return Ok(None);
    }
    let others = crate::analysis::input::Fields {
        text: None,
        ..fields.clone()
    };
    serde_json::to_string(&others)
        .map(Some)
        .map_err(ApiError::unexpected)
}

/// Write the job row and its queue entry, together with the submissions that arrive at the same
/// time ([`crate::jobs::submitter`]); with an idempotency `key`, only if no live job holds it
/// (the one that does is answered instead, if its request was the same). The job belongs to
/// the API key `api_key` (an API request with a key, whose `max_running` the workers keep) or
/// to `visitor` (the form), or to nobody.
pub async fn submit(
    state: &AppState,
    submission: Submission,
    visitor: Option<String>,
    api_key: Option<&crate::keys::Authenticated>,
    key: Option<KeyClaim>,
) -> Result<Submitted, ApiError> {
    // Taken here, once the body is in: a client slow to send it holds only its share of the
    // body budget, never a place among the submissions being written.
    let _in_flight = admit_submission(state)?;
    let (id, input, staged) = match submission.input {
        input::Input::Whole(body) => (Uuid::new_v4(), JobInput::Whole(body), None),
        input::Input::Staged(staged) => (
            staged.id,
            JobInput::Parts {
                bytes: staged.bytes,
                parts: staged.parts,
            },
            Some(staged),
        ),
    };
    let job = NewJob {
        id,
        visitor,
        api_key_id: api_key.map(|k| k.id.clone()),
        queue: state.config.queue_for(input.len()),
        format: submission.format,
        column: submission.fields.text.clone(),
        options: options_json(&submission.fields)?,
        title: submission.title,
        input,
        webhook_url: submission.webhook_url,
        idempotency: key,
        max_running: api_key.and_then(|k| k.limits.max_running),
    };
    let (id, queue, input_bytes, format) = (job.id, job.queue, job.input.len(), job.format);
    let key = job.idempotency.clone();
    match (state.deps.store.submit(job).await?, key) {
        (store::Submitted::KeyTaken, Some(key)) => replay(state, &key).await,
        (store::Submitted::KeyTaken, None) => Err(ApiError::unexpected(std::io::Error::other(
            "a submission without an idempotency key was not written",
        ))),
        (store::Submitted::Created, _) => {
            // Its parts are the job's input now (a replayed or failed submission's are deleted).
            if let Some(staged) = staged {
                staged.keep();
            }
            let metrics = &state.deps.metrics;
            metrics
                .jobs_submitted
                .with_label_values(&[queue.as_str()])
                .inc();
            tracing::info!(job_id = %id, queue = queue.as_str(), input_bytes, format = format.as_str(), "job queued");
            Ok(Submitted::Created(id))
        }
    }
}

/// The answer to a request whose idempotency key a live job holds.
async fn replay(state: &AppState, key: &KeyClaim) -> Result<Submitted, ApiError> {
    let Some(record) = state.deps.store.idempotency_record(&key.scope_key).await? else {
        // Its first request's job failed to be written (or the key expired this instant).
        return Err(ApiError::IdempotencyKeyInUse);
    };
    if record.fingerprint != key.fingerprint {
        return Err(ApiError::Unprocessable {
            code: "idempotency_key_reused",
            message: format!(
                "this Idempotency-Key was used for a different request (job {}); send a new key \
                 with a new request",
                record.job_id
            ),
        });
    }
    let id = Uuid::parse_str(&record.job_id).map_err(ApiError::unexpected)?;
    tracing::info!(job_id = %id, "submission replayed for its idempotency key");
    Ok(Submitted::Replayed(id))
}

/// Cancel a job (the API, the status page and the dashboard alike): the store cancels it, then
/// its analysis is told to stop if it runs in this process (a run elsewhere finds out from its
/// fenced writes).
pub async fn cancel(state: &AppState, raw_id: &str) -> Result<JobRow, ApiError> {
    let id = parse_id(raw_id)?;
    match state.deps.store.cancel(&id).await? {
        Cancel::Cancelled(job) => {
            state.deps.cancels.cancel(&id);
            state
                .deps
                .metrics
                .jobs_cancelled
                .with_label_values(&[&job.queue])
                .inc();
            tracing::info!(job_id = %id, "job cancel requested");
            Ok(*job)
        }
        Cancel::AlreadyFinal(job) => {
            let job = live(*job)?;
            Err(ApiError::Conflict {
                code: "already_final",
                message: format!("the job is already {}", job.status),
            })
        }
        Cancel::NotFound => Err(ApiError::NotFound),
    }
}

/// Delete a job (the API and the status page's Delete button): the store cancels it if it is
/// open (and its analysis is told to stop if it runs in this process), then removes its input,
/// items and report at once. Deleting a job whose data is gone already (deleted, or expired)
/// succeeds too: DELETE is idempotent, and a client that retries after a lost answer must not
/// be told it failed. Unknown ids (or tombstones past `TOMBSTONE_TTL`) are 404.
pub async fn delete(state: &AppState, raw_id: &str) -> Result<(), ApiError> {
    let id = parse_id(raw_id)?;
    match state.deps.store.delete(&id).await? {
        Delete::Deleted { cancelled } => {
            let metrics = &state.deps.metrics;
            if let Some(job) = cancelled {
                state.deps.cancels.cancel(&id);
                metrics
                    .jobs_cancelled
                    .with_label_values(&[&job.queue])
                    .inc();
            }
            metrics.jobs_pruned.with_label_values(&["deleted"]).inc();
            tracing::info!(job_id = %id, "job deleted");
            Ok(())
        }
        Delete::AlreadyGone(_) => Ok(()),
        Delete::NotFound => Err(ApiError::NotFound),
    }
}

/// The job `raw_id` names, if `caller` may see it: every route of a job (its status, items,
/// events, cancel, delete, and its page) finds it through here. A job of another client's key
/// is answered exactly as an unknown id (404, not 403), so ids of others' jobs cannot be told
/// from ids of no job. A tombstone is returned too (see [`live`]).
pub async fn find_job(state: &AppState, caller: &Caller, raw_id: &str) -> Result<JobRow, ApiError> {
    let id = parse_id(raw_id)?;
    match model::get(state.db(), &id).await? {
        Some(job) if caller.may_see(&job) => Ok(job),
        _ => Err(ApiError::NotFound),
    }
}

/// A job that still has its data; a tombstone (expired or deleted) is 410 Gone.
pub fn live(job: JobRow) -> Result<JobRow, ApiError> {
    match job.purged() {
        Some(reason) => Err(ApiError::Gone(reason)),
        None => Ok(job),
    }
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
    .service(only("/healthz", "GET, HEAD").route(get().to(api::healthz)))
    .service(only("/readyz", "GET, HEAD").route(get().to(api::readyz)))
    .service(only("/metrics", "GET, HEAD").route(get().to(api::metrics)))
    .service(only("/api/openapi.json", "GET, HEAD").route(get().to(openapi::openapi_json)))
    .service(
        only("/api/jobs", "GET, HEAD, POST")
            .route(get().to(api::list_jobs))
            .route(web::post().to(api::create_job)),
    )
    .service(
        only("/api/jobs/{id}", "GET, HEAD, DELETE")
            .route(get().to(api::get_job))
            .route(web::delete().to(api::delete_job)),
    )
    .service(only("/api/jobs/{id}/cancel", "POST").route(web::post().to(api::cancel_job)))
    .service(only("/api/jobs/{id}/events", "GET, HEAD").route(get().to(api::job_events)))
    .service(only("/api/jobs/{id}/items.csv", "GET, HEAD").route(get().to(api::items_csv)))
    .service(only("/api/jobs/{id}/items.jsonl", "GET, HEAD").route(get().to(api::items_jsonl)))
    .service(only("/", "GET, HEAD").route(get().to(pages::index)))
    .service(only("/analyses", "POST").route(web::post().to(pages::create)))
    .service(only("/analyses/{id}", "GET, HEAD").route(get().to(pages::status)))
    .service(only("/analyses/{id}/cancel", "POST").route(web::post().to(pages::cancel)))
    .service(only("/analyses/{id}/delete", "POST").route(web::post().to(pages::delete)))
    .service(only("/static/app.css", "GET, HEAD").route(get().to(pages::css)))
    .service(only("/static/app.js", "GET, HEAD").route(get().to(pages::js)))
    .configure(admin::routes)
    .default_service(web::to(not_found));
}

/// GET, and HEAD with the same handler (actix sends no body for HEAD).
fn get() -> actix_web::Route {
    use actix_web::guard;
    web::route().guard(guard::Any(guard::Get()).or(guard::Head()))
}

/// A resource answering `405 Method Not Allowed` with `Allow: {allow}` to the methods it has no
/// route for (JSON under `/api/`, as every API error).
fn only(path: &str, allow: &'static str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(move |req: actix_web::HttpRequest| async move {
        let e = ApiError::MethodNotAllowed {
            method: req.method().to_string(),
            allow,
        };
        if req.path().starts_with("/api/") {
            actix_web::ResponseError::error_response(&e)
        } else {
            HttpResponse::MethodNotAllowed()
                .insert_header((actix_web::http::header::ALLOW, allow))
                .content_type("text/plain; charset=utf-8")
                .body(format!("{e}\n"))
        }
    }))
}

async fn not_found(req: actix_web::HttpRequest) -> HttpResponse {
    if req.path().starts_with("/api/") {
        actix_web::ResponseError::error_response(&ApiError::NotFound)
    } else {
        pages::not_found_page()
    }
}
