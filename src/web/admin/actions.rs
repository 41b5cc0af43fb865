//! The dashboard's buttons: `POST /admin/jobs/{id}/retry` and `/cancel`, and
//! `POST /admin/webhooks/{id}/send`. Each checks the form's
//! CSRF token first, then sends the operator back to the dashboard, or to a short message page
//! when the action is refused or not possible.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use askama::Template;

use super::auth::{admin_token, forbidden_reason};
use crate::jobs::model::{self, JobRow};
use crate::jobs::webhooks::{self, DeliveryStatus};
use crate::web::errors::ApiError;
use crate::web::{AppState, parse_id};

#[derive(Template)]
#[template(path = "admin_message.html")]
struct MessagePage<'a> {
    heading: &'a str,
    message: &'a str,
}

/// A short page for a refused or impossible action, with a way back.
pub(super) fn message(status: StatusCode, heading: &str, message: &str) -> HttpResponse {
    super::page(status, MessagePage { heading, message }.render())
}

/// An action's error as a page: 404 and 409 readable, the rest as the API answers them.
fn action_error(e: ApiError) -> HttpResponse {
    match e {
        ApiError::NotFound => message(
            StatusCode::NOT_FOUND,
            "No such job",
            "There is no job with this id.",
        ),
        ApiError::Conflict { message: m, .. } => {
            message(StatusCode::CONFLICT, "Not possible now", &m)
        }
        e => e.error_response(),
    }
}

fn back_to_dashboard() -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/admin"))
        .finish()
}

/// `POST /admin/jobs/{id}/cancel`: cancel a queued or running job, as its owner can.
pub(super) async fn cancel(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    if let Some(reason) = forbidden_reason(&req, &body, admin_token(&state)) {
        return message(StatusCode::FORBIDDEN, "Refused", reason);
    }
    match crate::web::cancel(&state, &path).await {
        Ok(job) => {
            tracing::info!(
                target: super::LOG_TARGET,
                job_id = %job.id,
                "job cancelled by an operator"
            );
            back_to_dashboard()
        }
        Err(ApiError::Conflict { .. }) => {
            // web::cancel's message ("already final") reads oddly on the dashboard.
            let status = match parse_id(&path) {
                Ok(id) => model::get(state.db(), &id)
                    .await
                    .ok()
                    .flatten()
                    .map(|j| j.status.as_str()),
                Err(_) => None,
            };
            action_error(ApiError::Conflict {
                code: "already_final",
                message: format!(
                    "The job has already finished ({}); only queued or running jobs can be \
                     cancelled.",
                    status.unwrap_or("finished")
                ),
            })
        }
        Err(e) => action_error(e),
    }
}

/// `POST /admin/jobs/{id}/retry`: run a failed or cancelled job again.
pub(super) async fn retry(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    if let Some(reason) = forbidden_reason(&req, &body, admin_token(&state)) {
        return message(StatusCode::FORBIDDEN, "Refused", reason);
    }
    match retry_job(&state, &path).await {
        Ok(job) => {
            tracing::info!(
                target: super::LOG_TARGET,
                job_id = %job.id,
                queue = %job.queue,
                "job retried by an operator"
            );
            back_to_dashboard()
        }
        Err(e) => action_error(e),
    }
}

/// `POST /admin/webhooks/{id}/send`: attempt a failing webhook delivery now, with its retry
/// schedule started over.
pub(super) async fn send_again(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    if let Some(reason) = forbidden_reason(&req, &body, admin_token(&state)) {
        return message(StatusCode::FORBIDDEN, "Refused", reason);
    }
    let id = path.into_inner();
    match state.deps.store.send_delivery_again(&id).await {
        Ok(Some(d)) => {
            tracing::info!(
                target: super::LOG_TARGET,
                delivery_id = %d.id,
                job_id = %d.job_id,
                "webhook sent again by an operator"
            );
            back_to_dashboard()
        }
        Ok(None) => match webhooks::get(state.db(), &id).await {
            Ok(None) => message(
                StatusCode::NOT_FOUND,
                "No such delivery",
                "There is no webhook delivery with this id.",
            ),
            Ok(Some(d)) => action_error(ApiError::Conflict {
                code: "not_sendable",
                message: if d.status == DeliveryStatus::Delivered {
                    "The event has been delivered already.".into()
                } else {
                    "An attempt is being made right now; look again in a moment.".into()
                },
            }),
            Err(e) => action_error(e.into()),
        },
        Err(e) => action_error(e.into()),
    }
}

/// `failed | cancelled → queued` with a new queue entry (the store's retry).
pub async fn retry_job(state: &AppState, raw_id: &str) -> Result<JobRow, ApiError> {
    let id = parse_id(raw_id)?;
    let deps = &state.deps;
    let job = deps.store.retry(&id).await?;
    match job {
        Some(job) => Ok(job),
        None => match model::get(deps.db(), &id).await? {
            None => Err(ApiError::NotFound),
            Some(job) => Err(ApiError::Conflict {
                code: "not_retryable",
                message: format!(
                    "The job is {}; only failed or cancelled jobs can be retried.",
                    job.status
                ),
            }),
        },
    }
}
