//! The OpenAPI 3.1 description of the JSON API, generated from the code: the operations come from
//! the `#[utoipa::path]` attributes of the handlers in [`super::api`], the schemas from the
//! `ToSchema` derives of the types the handlers answer with ([`crate::analysis::Report`],
//! [`super::errors::ErrorBody`], [`super::api::Accepted`]) and, for the bodies built from types
//! outside the web layer (the job's status, a scored item) or never deserialised into a type (a
//! submission), from the schema types below. `tests/it/api.rs` checks real responses against the
//! document and `tests/it/schemathesis.rs` fuzzes the app with it, so neither side can drift.
//!
//! The document is built once and served at `GET /api/openapi.json`.

use std::sync::LazyLock;

use serde::Serialize;
use utoipa::openapi::schema::{AnyOfBuilder, Object, ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{Modify, OpenApi, ToSchema};

use super::api;
use super::errors::{ErrorBody, ErrorDetail};
use crate::analysis::report::{Highlight, LabelCounts};
use crate::analysis::{Format, Report};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "sentiq",
        description = "Sentiment analysis off the request path: submit a text, get a job id at \
            once, follow the job, read the result. Every error is answered as \
            `{\"error\": {\"code\": \"...\", \"message\": \"...\"}}`.",
    ),
    paths(
        api::create_job,
        api::get_job,
        api::cancel_job,
        api::job_events,
        api::items_csv,
        api::items_jsonl,
        api::healthz,
        api::readyz,
        api::metrics,
        openapi_json,
    ),
    components(schemas(
        TextSubmission,
        BatchSubmission,
        Document,
        SubmissionBody,
        api::Accepted,
        Job,
        StatusEvent,
        JobStatus,
        Queue,
        Progress,
        Report,
        Format,
        LabelCounts,
        Highlight,
        Item,
        api::Health,
        ErrorBody,
        ErrorDetail,
    )),
    modifiers(&RequiredHeaders),
    tags((name = "jobs", description = "Analysis jobs"), (name = "operations", description = "Health, readiness and metrics")),
)]
pub struct ApiDoc;

/// The document as JSON, built on first use.
pub static OPENAPI_JSON: LazyLock<String> = LazyLock::new(|| {
    ApiDoc::openapi()
        .to_pretty_json()
        .expect("the document serialises")
});

/// Every response header the document declares is one the API always sends with that response;
/// utoipa's attributes cannot say so, hence this pass marking them all `required`.
struct RequiredHeaders;

impl Modify for RequiredHeaders {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.delete,
            ];
            for operation in operations.into_iter().flatten() {
                for response in operation.responses.responses.values_mut() {
                    let RefOr::T(response) = response else {
                        continue;
                    };
                    for header in response.headers.values_mut() {
                        if let RefOr::T(header) = header {
                            header
                                .extensions
                                .get_or_insert_with(Default::default)
                                .insert("required".into(), true.into());
                        }
                    }
                }
            }
        }
    }
}

/// `GET /api/openapi.json`: this document.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document of the JSON API.",
        body = Object, content_type = "application/json")),
)]
pub async fn openapi_json() -> actix_web::HttpResponse {
    actix_web::HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((
            actix_web::http::header::CACHE_CONTROL,
            "public, max-age=3600",
        ))
        .body(OPENAPI_JSON.as_str())
}

/// One document: `{"text": "..."}`. Other fields are ignored.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct TextSubmission {
    /// The document; it is split into sentences. Must not be blank.
    text: String,
}

/// A batch: `{"documents": [{"id": "...", "text": "..."}]}`, one item per document.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct BatchSubmission {
    /// At least one document must have text that is not blank.
    documents: Vec<Document>,
}

/// One document of a batch.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Document {
    /// The caller's id for the document, echoed in the results (a number is kept as text).
    #[schema(schema_with = document_id)]
    id: Option<String>,
    text: String,
}

fn document_id() -> Object {
    ObjectBuilder::new()
        .schema_type(SchemaType::Array(vec![
            Type::String,
            Type::Number,
            Type::Null,
        ]))
        .description(Some(
            "The caller's id for the document, echoed in the results (a number is kept as text).",
        ))
        .build()
}

/// The JSON body of `POST /api/jobs`: one document or a batch. A body with a `text` field is one
/// document, whatever else it holds, so both may match: `anyOf`, not `oneOf`.
pub struct SubmissionBody;

impl utoipa::PartialSchema for SubmissionBody {
    fn schema() -> RefOr<Schema> {
        AnyOfBuilder::new()
            .item(Ref::from_schema_name(TextSubmission::name()))
            .item(Ref::from_schema_name(BatchSubmission::name()))
            .description(Some(
                "One document (`text`) or a batch (`documents`); a body with a `text` field is \
                 one document, whatever else it holds.",
            ))
            .into()
    }
}

impl ToSchema for SubmissionBody {}

/// Where a job is in its life: `queued → running → succeeded | failed | cancelled`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum JobStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

/// The queue a job was routed to: small inputs go to `quick`, large ones to `bulk`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum Queue {
    Quick,
    Bulk,
}

/// Items scored so far out of the items found so far.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct Progress {
    done: u64,
    total: u64,
}

/// A job: `GET /api/jobs/{id}`, `POST /api/jobs/{id}/cancel` and each event of the stream.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct Job {
    #[schema(format = "uuid")]
    id: String,
    status: JobStatus,
    queue: Queue,
    progress: Progress,
    /// Runs started so far.
    attempts: u64,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime, required = true)]
    started_at: Option<String>,
    #[schema(format = DateTime, required = true)]
    finished_at: Option<String>,
    /// Why the job failed (or was cancelled), else null.
    #[schema(required = true)]
    error: Option<ErrorDetail<'static>>,
    /// The report of a succeeded job, else null.
    #[schema(required = true)]
    result: Option<Report>,
}

/// One Server-Sent Event of `GET /api/jobs/{id}/events` (keep-alive comments aside).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct StatusEvent {
    /// Always `status`.
    #[schema(pattern = "^status$")]
    event: String,
    /// The job's version: it grows with every change.
    #[schema(pattern = "^[0-9]+$")]
    id: String,
    /// The job, as JSON.
    #[schema(schema_with = job_json)]
    data: String,
}

fn job_json() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .content_media_type("application/json")
        .content_schema(Some(Ref::from_schema_name(Job::name())))
        .description(Some("The job, as JSON: what `GET /api/jobs/{id}` answers."))
        .build()
}

/// One scored item, as each line of `items.jsonl` holds it.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct Item {
    /// 0-based position of the item in the input.
    position: u64,
    /// The item's own id (batch documents and JSONL lines that carry one), else null.
    #[schema(required = true)]
    id: Option<String>,
    text: String,
    neg: f64,
    neu: f64,
    pos: f64,
    compound: f64,
}
