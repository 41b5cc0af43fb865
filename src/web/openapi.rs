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

use super::api::{self, Item, StatusEvent};
use super::errors::{ErrorBody, ErrorDetail};
use super::input::{Document, DocumentId, SubmissionBody};
use crate::analysis::agreement::{Agreement, RatingMean};
use crate::analysis::groups::{Group, GroupKind, Grouping, Period};
use crate::analysis::report::{
    GroupSummary, Highlight, LabelCounts, LanguageCount, Languages, RatingSummary,
};
use crate::analysis::{Format, Report};
use crate::jobs::model::{JobView, Progress, Status};
use crate::jobs::queue::QueueName;
use crate::jobs::webhooks::{DeliveryStatus, WebhookView};
use crate::webhooks::{Event, EventData};

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
        api::list_jobs,
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
        SubmissionBody,
        Document,
        DocumentId,
        api::Accepted,
        api::JobList,
        JobView,
        StatusEvent,
        Status,
        QueueName,
        Progress,
        Report,
        Format,
        LabelCounts,
        Highlight,
        GroupSummary,
        Grouping,
        Group,
        GroupKind,
        Period,
        RatingSummary,
        Agreement,
        RatingMean,
        Languages,
        LanguageCount,
        Item,
        api::ItemSentiment,
        api::Health,
        ErrorBody,
        ErrorDetail,
        WebhookView,
        DeliveryStatus,
        Event,
        EventData,
    )),
    modifiers(&BearerKeys, &RequiredHeaders, &WebhookEvents),
    tags((name = "jobs", description = "Analysis jobs"), (name = "operations", description = "Health, readiness and metrics")),
)]
pub struct ApiDoc;

/// The document as JSON, built on first use.
pub static OPENAPI_JSON: LazyLock<String> = LazyLock::new(|| {
    ApiDoc::openapi()
        .to_pretty_json()
        .expect("the document serialises")
});

/// Every response header the document declares is one the API always sends with that response,
/// but for [`OPTIONAL_HEADERS`]; utoipa's attributes cannot say so, hence this pass marking the
/// others `required`.
struct RequiredHeaders;

/// Response headers sent only with some answers of their status: `Preference-Applied` when a
/// preference of the request was applied, `Idempotent-Replayed` on a replayed submission,
/// `Link` when a listing has a next page.
const OPTIONAL_HEADERS: &[&str] = &["Preference-Applied", "Idempotent-Replayed", "Link"];

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
                    for (name, header) in response.headers.iter_mut() {
                        if OPTIONAL_HEADERS.contains(&name.as_str()) {
                            continue;
                        }
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

/// The `bearer` security scheme, and what it means for every job route (`/api/jobs…`), added
/// here once rather than in each handler's attribute: the scheme listed beside an empty
/// requirement (OpenAPI's way of saying a credential is optional: with `API_KEYS=optional`, the
/// default, a request without one is served anonymously; with `required` it is refused), and a
/// `401` answer where the handler declares none of its own.
struct BearerKeys;

impl Modify for BearerKeys {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::header::HeaderBuilder;
        use utoipa::openapi::security::{
            HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
        };
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format("sq_ and 43 base64url characters")
            .description(Some(
                "An API key made with `sentiq keys create NAME` or on `/admin/keys`. A keyed \
                 job belongs to its key: other clients get 404 for it. Submissions are limited \
                 per key. A malformed, unknown or revoked key is refused with 401 \
                 (`WWW-Authenticate: Bearer ... error=\"invalid_token\"`).",
            ))
            .build();
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme("bearer", SecurityScheme::Http(scheme));
        let unauthorized = ResponseBuilder::new()
            .description(
                "A key that is malformed, unknown or revoked, or no key where the server \
                 requires one (`API_KEYS=required`) (`unauthorized`).",
            )
            .header(
                "WWW-Authenticate",
                HeaderBuilder::new()
                    .schema(Some(<String as utoipa::PartialSchema>::schema()))
                    .description(Some(
                        "`Bearer realm=\"sentiq\"`, with `error=\"invalid_token\"` for a \
                         refused key (RFC 6750).",
                    ))
                    .build(),
            )
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name(
                        <ErrorBody as utoipa::ToSchema>::name(),
                    )))
                    .build(),
            )
            .build();
        let jobs = openapi
            .paths
            .paths
            .iter_mut()
            .filter(|(path, _)| path.starts_with("/api/jobs"));
        for (_, item) in jobs {
            let operations = [&mut item.get, &mut item.post, &mut item.delete];
            for operation in operations.into_iter().flatten() {
                operation.security.get_or_insert_with(|| {
                    vec![
                        SecurityRequirement::default(),
                        SecurityRequirement::new("bearer", Vec::<String>::new()),
                    ]
                });
                operation
                    .responses
                    .responses
                    .entry("401".into())
                    .or_insert_with(|| unauthorized.clone().into());
            }
        }
    }
}

/// The request sentiq sends to a job's `webhook_url`, as OpenAPI 3.1 describes calls an API
/// makes to its clients: a top-level `webhooks` entry.
struct WebhookEvents;

impl Modify for WebhookEvents {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::path::{
            HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, PathItem,
        };
        use utoipa::openapi::request_body::RequestBodyBuilder;
        use utoipa::openapi::{ContentBuilder, PathsBuilder, Ref, Required, Response};
        let header = |name: &str, description: &str| {
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Header)
                .required(Required::True)
                .schema(Some(<String as utoipa::PartialSchema>::schema()))
                .description(Some(description))
                .build()
        };
        let operation = OperationBuilder::new()
            .summary(Some("A job submitted with a webhook_url became final"))
            .description(Some(
                "POSTed to the job's `webhook_url` when it becomes final, signed as Standard \
                 Webhooks v1 describes: verify `webhook-signature` by computing \
                 `v1,` + base64(HMAC-SHA256(key, `{webhook-id}.{webhook-timestamp}.{body}`)) with \
                 the key of the server's `WEBHOOK_SECRET` (`whsec_` + base64 of the key) over \
                 the body exactly as received, compare in constant time, refuse old timestamps, \
                 and use `webhook-id` to skip an event seen before (delivery is at least once). \
                 Redirects are not followed; the receiver has `WEBHOOK_TIMEOUT` (10 s) to \
                 answer. Retried after about 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h \
                 (`WEBHOOK_RETRY_SCHEDULE`, with jitter, `Retry-After` honoured) until a 2xx.",
            ))
            .parameter(header(
                "webhook-id",
                "The event's id (`msg_` and 32 hex digits): the same on every attempt.",
            ))
            .parameter(header(
                "webhook-timestamp",
                "Unix time of this attempt, in seconds.",
            ))
            .parameter(header(
                "webhook-signature",
                "`v1,` and the base64 of the HMAC-SHA256 signature.",
            ))
            .request_body(Some(
                RequestBodyBuilder::new()
                    .required(Some(Required::True))
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name(
                                <Event as utoipa::ToSchema>::name(),
                            )))
                            .build(),
                    )
                    .build(),
            ))
            .response("2XX", Response::new("Delivered: no further attempt."))
            .response(
                "410",
                Response::new("Gone: no further attempt for this event, ever."),
            )
            .response(
                "default",
                Response::new("Not delivered: the event is sent again later."),
            );
        openapi.webhooks = Some(
            PathsBuilder::new()
                .path("jobFinished", PathItem::new(HttpMethod::Post, operation))
                .build(),
        );
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
