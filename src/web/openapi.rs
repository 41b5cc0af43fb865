//! The OpenAPI 3.1 description of the JSON API, generated from the code: the operations come from
//! the `#[utoipa::path]` attributes of the handlers in [`super::api`], the schemas from the
//! `ToSchema` derives of the types the handlers answer with (the job, [`JobView`], is the same
//! type that is serialised) and, for bodies never (de)serialised through one type (a submission,
//! an event, a scored item line), from the schema types beside their handlers in [`super::api`].
//! `tests/it/api.rs` checks real responses against the document and `tests/it/schemathesis.rs`
//! fuzzes the app with it, so neither side can drift.
//!
//! The document is built once and served at `GET /api/openapi.json`.

use std::sync::LazyLock;

use utoipa::openapi::RefOr;
use utoipa::{Modify, OpenApi};

use super::api::{
    self, BatchSubmission, Document, Item, StatusEvent, SubmissionBody, TextSubmission,
};
use super::errors::{ErrorBody, ErrorDetail};
use crate::analysis::report::{Highlight, LabelCounts};
use crate::analysis::{Format, Report};
use crate::jobs::model::{JobView, Progress, Status};
use crate::jobs::queue::QueueName;

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
        api::delete_job,
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
        JobView,
        StatusEvent,
        Status,
        QueueName,
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
    super::respond::asset("application/json", "public, max-age=3600", &OPENAPI_JSON)
}
