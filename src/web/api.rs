//! The JSON API.

use std::sync::Arc;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, Responder, web};
use actix_web_lab::sse;
use futures_util::stream;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa::openapi::Ref;
use utoipa::openapi::schema::{Object, ObjectBuilder, Type};

use super::caller::Caller;
use super::downloads::{self, Layout};
use super::errors::{ApiError, ErrorBody, Unauthenticated};
use super::idempotency::{self, IdempotencyKey};
use super::input::{self, Submission, SubmissionBody};
use super::listing::ListQuery;
use super::respond::media_type;
use super::upload::{self, Upload};
use super::wait::{self, Follower, PREFERENCE_APPLIED, Slot, Waited};
use super::{AppState, Submitted, find_job, live, parse_id, submit};
use crate::analysis::Format;
use crate::jobs::model::{self, ItemRow, JobView, Status};
use crate::jobs::webhooks;

/// The answer to a submission.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Accepted {
    /// The job's id, a random UUID.
    #[schema(value_type = String, format = "uuid")]
    pub id: String,
    /// Always `queued`.
    #[schema(pattern = "^queued$")]
    pub status: &'static str,
    /// Where to follow the job: `/api/jobs/{id}`.
    pub status_url: String,
}

/// The answer of `/healthz` (`ok`) and `/readyz` (`ready`).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Health {
    #[schema(pattern = "^(ok|ready)$")]
    pub status: &'static str,
}

#[derive(Deserialize)]
pub struct UploadQuery {
    #[serde(flatten)]
    pub fields: input::NamedFields,
    /// Where to POST the completion event (raw uploads have no body field for it).
    pub webhook_url: Option<String>,
}

/// `POST /api/jobs` → 202 with `Location` and `Retry-After`; with `Prefer: wait=N`, 200 with the
/// job when it is final within N seconds.
#[utoipa::path(
    post,
    path = "/api/jobs",
    tag = "jobs",
    summary = "Submit an analysis",
    description = "Writes the job row and its queue entry and answers at once; a worker does the \
        analysis. JSON bodies are one document or a batch; raw uploads are a text \
        (`text/plain`, split into sentences), a CSV (`text/csv`, one item per row of the text \
        column) or JSON lines (`application/x-ndjson`, one item per line). Bad input is refused \
        here, before any row is written. With a `webhook_url` (a field of a JSON body, or the \
        query parameter) the job's final state is POSTed there as a signed Standard Webhooks \
        event (see `webhooks` in this document) and retried until the receiver answers 2xx.",
    params(
        ("column" = Option<String>, Query,
            description = "CSV uploads: the column holding the text (by default a column named \
                like `text`, `review` or `comment`); JSON lines: the key (by default `text`)."),
        ("id_column" = Option<String>, Query,
            description = "CSV and JSON lines uploads: the column (or key) naming each item, shown \
                as its `#` (by default a column named `id` or `uuid`, or ending in `_id`)."),
        ("group_by" = Option<String>, Query,
            description = "CSV and JSON lines uploads: group the results by this column (or \
                key): count, mean compound with its 95% interval and label shares per group, \
                the 50 largest groups plus `other`. A column of dates or timestamps gives days, \
                weeks or months as a time series."),
        ("group_by_period" = Option<String>, Query,
            description = "With `group_by` on dates: `day`, `week` or `month` (by default chosen \
                from the span: up to 92 days by day, up to 3 years by week, else by month)."),
        ("rating_column" = Option<String>, Query,
            description = "CSV and JSON lines uploads: the column (or key) of the rows' own \
                numeric ratings, for the agreement of the scores with them (Pearson, Spearman, \
                mean compound per rating). By default a column named `rating`, `stars` or \
                `score` is used when it holds numbers."),
        ("Idempotency-Key" = Option<String>, Header, nullable = false,
            description = "1 to 255 printable ASCII characters (bare, or quoted as a structured \
                field string). A repeat of the same request (same content type, query and body) \
                with the same key within `IDEMPOTENCY_TTL` (24 h by default) gets the first \
                answer again, with `Idempotent-Replayed: true`, instead of a second job. Each API \
                key has keys of its own; requests without an API key share one scope, so use \
                unguessable keys there, e.g. UUIDs."),
        ("Prefer" = Option<String>, Header, nullable = false,
            description = "RFC 7240 preferences. `wait=N` (whole seconds, 0 to 25): answer `200` \
                with the job if it is final within N seconds, else the usual `202` after N \
                seconds. Other preferences (`respond-async`, `return=...`) are ignored."),
        ("webhook_url" = Option<String>, Query, format = "uri",
            description = "Where to POST the completion event (http or https, at most 2,048 \
                characters, a public host); for raw uploads, whose body has no field for it. \
                Refused with 422 when the server has no `WEBHOOK_SECRET`."),
    ),
    request_body(description = "The input.", content(
        (SubmissionBody = "application/json"),
        (String = "text/plain"),
        (String = "text/csv"),
        (String = "application/x-ndjson"),
    )),
    responses(
        (status = 200, description = "Final within the `Prefer: wait` asked for: the job, as \
            `GET /api/jobs/{id}` answers it.", body = JobView,
            headers(
                ("Location" = String, description = "The job: `/api/jobs/{id}`."),
                ("Content-Location" = String, description = "The job: `/api/jobs/{id}`, which \
                    the body represents."),
                ("ETag" = String, description = "The job's version, for `If-None-Match`."),
                ("Cache-Control" = String, description = "`no-cache`."),
                ("Preference-Applied" = String, description = "`wait=N`, the wait applied."),
                ("Idempotent-Replayed" = String, description = "`true` when this is the answer \
                    to an earlier request with the same `Idempotency-Key` (absent otherwise)."),
            )),
        (status = 202, description = "Accepted: the job is queued (or, for a repeated \
            `Idempotency-Key`, was queued by the first request; with `Prefer: wait=N`, it was not \
            final after N seconds).", body = Accepted,
            headers(
                ("Location" = String, description = "The job: `/api/jobs/{id}`."),
                ("Retry-After" = u64, description = "Seconds before polling is useful."),
                ("Preference-Applied" = String, description = "`wait=N` when the job was waited \
                    for N seconds; absent when no wait was asked for, or none could be granted \
                    (too many requests waiting)."),
                ("Idempotent-Replayed" = String, description = "`true` when this is the answer \
                    to an earlier request with the same `Idempotency-Key` (absent otherwise)."),
            )),
        (status = 400, description = "Malformed: not valid JSON (`invalid_json`), a field missing \
            (`missing_field`), not UTF-8 (`invalid_utf8`), a bad query string (`bad_request`), \
            a `Prefer: wait` that is not whole seconds from 0 to 25 (`bad_prefer`), an unusable \
            `Idempotency-Key` (`invalid_idempotency_key`).",
            body = ErrorBody),
        (status = 408, description = "The body came too slowly (`body_too_slow`): less than \
            10 KiB in 10 s of waiting for it. Nothing was written; the connection is closed.",
            body = ErrorBody),
        (status = 409, description = "The first request with this `Idempotency-Key` is still \
            being written (`idempotency_key_in_use`): try again.", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before trying again."))),
        (status = 413, description = "The body is over the size limit (`payload_too_large`).",
            body = ErrorBody),
        (status = 415, description = "Not one of the accepted content types, or compressed \
            (`unsupported_media_type`).", body = ErrorBody),
        (status = 422, description = "Nothing to analyse (`empty_input`), no usable text column \
            (`no_text_column`), an `id_column`, `group_by` or `rating_column` the input does not \
            have (`unknown_column`, listing the columns), a `group_by_period` that is not \
            `day`, `week` or `month` or comes without `group_by` (`invalid_period`), a \
            `rating_column` holding a value that is not a number (`bad_record`, naming the line \
            and the value), a broken CSV record (`bad_record`), an item over the size limit \
            (`item_too_large`), an `Idempotency-Key` already used for a different request \
            (`idempotency_key_reused`), a `webhook_url` that is not an http(s) URL of at most \
            2,048 characters or does not resolve (`invalid_webhook_url`), one whose host is or \
            resolves to a loopback, private, link-local or metadata address \
            (`webhook_url_refused`), or a `webhook_url` on a server without webhooks \
            (`webhooks_not_configured`).", body = ErrorBody),
        (status = 429, description = "Too many submissions from this client (`rate_limited`): \
            with an API key, over the key's rate (shared by every web process); without one, \
            over the rate of the client's address.",
            body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds until a submission is accepted."))),
        (status = 503, description = "The database or queue is briefly unavailable \
            (`unavailable`); the database's disk is full (`storage_full`); or the server is at a \
            cap of its load (`overloaded`): it works on as many submissions as it allows \
            (`MAX_SUBMISSIONS_IN_FLIGHT`, refused at once), or holds as many request bodies as \
            its memory budget allows (after a wait of up to 3 s; `MEMORY_BUDGET_MB`).",
            body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before trying again."))),
    ),
)]
pub async fn create_job(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<UploadQuery>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    // Before the body is read: a client over its limit costs almost nothing.
    state.submit_limit.check(&req, caller.key()).await?;
    let wait = wait::preferred(&req)?;
    let (media, raw_format) = submission_media(&req)?;
    let key = IdempotencyKey::from_request(&req)?;
    let UploadQuery {
        fields,
        webhook_url,
    } = query.into_inner();
    let fields = fields.parse()?;
    let limit = state.config.http.max_body_bytes;
    let declared = upload::declared_length(&req);
    let (permit, fingerprint, submission) = match raw_format {
        // Text, CSV and JSON lines are read as they arrive, a part at a time.
        Some(format) => {
            if declared.is_some_and(|len| len > limit as u64) {
                return Err(ApiError::PayloadTooLarge { limit });
            }
            let permit = state
                .body_budget
                .admit(upload::upload_share(declared))
                .await?;
            let uploaded = Upload::new(state.deps.store.clone(), limit)
                .read(payload)
                .await?;
            let digest = uploaded.digest();
            let request = [media.as_bytes(), req.query_string().as_bytes(), &digest];
            let fingerprint = idempotency::fingerprint(&request);
            (
                permit,
                fingerprint,
                input::from_upload(uploaded, format, fields, None)?,
            )
        }
        None if fields.only_text() => {
            // Parsed whole: the body, the strings parsed out of it and the stored form of a
            // batch may all be in memory at once.
            let share = declared.map_or(limit, |len| len.min(limit as u64) as usize);
            let permit = state.body_budget.admit(share.saturating_mul(3)).await?;
            let body = input::read_body(&req, payload, limit, 0).await?;
            let request = [media.as_bytes(), req.query_string().as_bytes(), &body];
            let fingerprint = idempotency::fingerprint(&request);
            (permit, fingerprint, input::from_json(&body)?)
        }
        None => {
            return Err(ApiError::Unprocessable {
                code: "unknown_column",
                message: "id_column, group_by and rating_column name columns of a CSV upload \
                          or keys of JSON lines (text/csv or application/x-ndjson); a JSON body \
                          has neither"
                    .into(),
            });
        }
    };
    // The request as the key's fingerprint sees it: what the job is made of.
    let key = key.map(|k| {
        k.claim(
            caller.key_id(),
            fingerprint,
            state.config.limits.idempotency_ttl,
        )
    });
    let mut submission: Submission = submission;
    submission.webhook_url =
        checked_webhook_url(&state, submission.webhook_url, webhook_url).await?;
    let submitted = submit(&state, submission, None, caller.key(), key).await?;
    drop(permit);
    let id = submitted.id();
    let url = format!("/api/jobs/{id}");
    let waited = wait::for_final(&state, &id.to_string(), wait).await;
    let replayed = matches!(submitted, Submitted::Replayed(_));
    if let Waited::Final { job, .. } = &waited {
        let mut answer = job_ok(job);
        if replayed {
            answer.insert_header((idempotency::REPLAYED, "true"));
        }
        return Ok(answer
            .insert_header((header::LOCATION, url.clone()))
            .insert_header((header::CONTENT_LOCATION, url))
            .insert_header((PREFERENCE_APPLIED, waited.applied().unwrap_or_default()))
            .json(webhooks::job_view(state.db(), job).await?));
    }
    let mut accepted = HttpResponse::Accepted();
    if let Some(applied) = waited.applied() {
        accepted.insert_header((PREFERENCE_APPLIED, applied));
    }
    if replayed {
        accepted.insert_header((idempotency::REPLAYED, "true"));
    }
    Ok(accepted
        .insert_header((header::LOCATION, url.clone()))
        .insert_header((header::RETRY_AFTER, "1"))
        .json(Accepted {
            id: submitted.id().to_string(),
            status: "queued",
            status_url: url,
        }))
}

/// A page of the caller's jobs.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobList {
    /// The caller's jobs, newest first (by `created_at`, then id).
    pub jobs: Vec<JobView>,
    /// The URL of the next page (the same filters and limit, and a cursor); null on the last
    /// page. Also sent as `Link: <...>; rel="next"`.
    #[schema(required = true)]
    pub next: Option<String>,
}

/// `GET /api/jobs`: the caller's own jobs, newest first, a page at a time.
#[utoipa::path(
    get,
    path = "/api/jobs",
    tag = "jobs",
    summary = "List your jobs",
    description = "The jobs of the API key the request presents or, without a key, those the \
        browser form made for the visitor cookie sent; never anyone else's. Newest first \
        (`created_at`, then id), a page at a time: follow `next` (also the `Link` header, \
        `rel=\"next\"`) until it is null. Deleted and expired jobs (tombstones) are left out. \
        Pages are keyset-paginated, so a job submitted meanwhile never shifts a page.",
    params(
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 100,
            description = "Jobs per page, 1 to 100 (default 20)."),
        ("cursor" = Option<String>, Query,
            description = "Where the page starts: the `cursor` of the previous page's `next` \
                URL. Opaque; a cursor this API did not give out is refused (`invalid_cursor`)."),
        ("status" = Option<Vec<Status>>, Query, explode = true,
            description = "Only jobs of these statuses: repeat the parameter \
                (`status=queued&status=running`) or separate them with commas."),
        ("created_after" = Option<String>, Query, format = DateTime,
            description = "Only jobs created after this instant (RFC 3339, exclusive, to the \
                millisecond)."),
        ("created_before" = Option<String>, Query, format = DateTime,
            description = "Only jobs created before this instant (RFC 3339, exclusive, to the \
                millisecond)."),
    ),
    responses(
        (status = 200, description = "A page of your jobs.", body = JobList,
            headers(
                ("Link" = String, description = "`<next URL>; rel=\"next\"` (RFC 8288) when \
                    there is a next page."),
                ("Cache-Control" = String, description = "`private, no-cache`."),
            )),
        (status = 400, description = "A parameter that cannot be used: `invalid_limit`, \
            `invalid_cursor`, `invalid_status`, `invalid_date`, `unknown_parameter`, or a \
            parameter given twice (`bad_request`).", body = ErrorBody),
        (status = 401, description = "No API key and no visitor cookie (nothing names your \
            jobs), a key that is malformed, unknown or revoked, or no key where the server \
            requires one (`unauthorized`).", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"sentiq\"`, \
                with `error=\"invalid_token\"` for a refused key (RFC 6750)."))),
        (status = 503, description = "The database is briefly unavailable (`unavailable`).",
            body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before trying again."))),
    ),
    security((), ("bearer" = [])),
)]
pub async fn list_jobs(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let owner = caller
        .owner()
        .ok_or(ApiError::Unauthorized(Unauthenticated::NoOwner))?;
    let query = ListQuery::parse(req.query_string())?;
    let mut rows = model::list(state.db(), &query.listing(owner)).await?;
    let more = rows.len() as i64 > query.limit;
    rows.truncate(usize::try_from(query.limit).unwrap_or(0));
    let next = rows
        .last()
        .filter(|_| more)
        .map(|last| query.next_url(last));
    let jobs = webhooks::job_views(state.db(), &rows).await?;
    let mut page = HttpResponse::Ok();
    page.insert_header((header::CACHE_CONTROL, "private, no-cache"));
    if let Some(next) = &next {
        page.insert_header((header::LINK, format!("<{next}>; rel=\"next\"")));
    }
    Ok(page.json(JobList { jobs, next }))
}

/// A `200` with the job, its `ETag`, and no caching without revalidation.
fn job_ok(job: &model::JobRow) -> actix_web::HttpResponseBuilder {
    let mut ok = HttpResponse::Ok();
    ok.insert_header((header::ETAG, job.etag()))
        .insert_header((header::CACHE_CONTROL, "no-cache"));
    ok
}

/// The media type of a submission and, for a raw upload, its format: 415 for a compressed body
/// or a type the API does not take.
fn submission_media(req: &HttpRequest) -> Result<(String, Option<Format>), ApiError> {
    if let Some(coding) = req
        .headers()
        .get(header::CONTENT_ENCODING)
        .map(|v| {
            v.to_str()
                .unwrap_or("(not text)")
                .trim()
                .to_ascii_lowercase()
        })
        .filter(|c| !c.is_empty() && c != "identity")
    {
        return Err(ApiError::UnsupportedMediaType(format!(
            "content encoding {coding:?} is not supported: send the body uncompressed"
        )));
    }
    let media = media_type(req);
    let raw_format = Format::from_media_type(&media);
    if media != "application/json" && raw_format.is_none() {
        return Err(ApiError::UnsupportedMediaType(format!(
            "unsupported content type {:?}: send application/json, text/plain, text/csv or application/x-ndjson",
            if media.is_empty() { "(none)" } else { &media }
        )));
    }
    Ok((media, raw_format))
}

/// The submission's webhook URL (from the JSON body or the query string, not both), checked
/// ([`crate::webhooks::address::check`]); None when there is none.
async fn checked_webhook_url(
    state: &AppState,
    in_body: Option<String>,
    in_query: Option<String>,
) -> Result<Option<String>, ApiError> {
    let raw = match (in_body, in_query) {
        (None, None) => return Ok(None),
        (Some(_), Some(_)) => {
            return Err(ApiError::Unprocessable {
                code: "invalid_webhook_url",
                message: "webhook_url is given both in the body and in the query string: give \
                          it once"
                    .into(),
            });
        }
        (Some(raw), None) | (None, Some(raw)) => raw,
    };
    if state.config.webhooks.secret.is_none() {
        return Err(ApiError::Unprocessable {
            code: "webhooks_not_configured",
            message: "webhooks are not configured on this server (it has no WEBHOOK_SECRET to \
                      sign them with): submit without webhook_url and follow the job at its \
                      status_url"
                .into(),
        });
    }
    let url = crate::webhooks::address::check(&raw, state.config.webhooks.allow_private).await?;
    Ok(Some(url.to_string()))
}

fn etag_matches(req: &HttpRequest, etag: &str) -> bool {
    req.headers()
        .get_all(header::IF_NONE_MATCH)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            let t = t.trim();
            t == "*" || t == etag || t.strip_prefix("W/") == Some(etag)
        })
}

/// `GET /api/jobs/{id}` with ETag / If-None-Match, and a long-poll with `Prefer: wait`.
#[utoipa::path(
    get,
    path = "/api/jobs/{id}",
    tag = "jobs",
    summary = "The job's status, progress and result",
    params(
        ("id" = String, Path, format = "uuid", description = "The job's id (anything else is 404)."),
        ("If-None-Match" = Option<String>, Header, nullable = false,
            description = "An ETag of an earlier answer: 304 while the job has not changed."),
        ("Prefer" = Option<String>, Header, nullable = false,
            description = "RFC 7240 preferences. `wait=N` (whole seconds, 0 to 25) with an \
                `If-None-Match` that matches: a long-poll, answered `200` as soon as the job \
                changes, else `304` after N seconds. Without a matching `If-None-Match` the \
                answer comes at once. Other preferences are ignored."),
    ),
    responses(
        (status = 200, description = "The job.", body = JobView,
            headers(
                ("ETag" = String, description = "Changes whenever the job does."),
                ("Cache-Control" = String, description = "`no-cache`."),
                ("Preference-Applied" = String, description = "`wait=N` when the answer waited \
                    for the job to change."),
            )),
        (status = 304, description = "Not modified since the ETag given in `If-None-Match` (with \
            `Prefer: wait=N`: for N seconds).",
            headers(
                ("ETag" = String, description = "The job's current ETag."),
                ("Preference-Applied" = String, description = "`wait=N` when the answer waited \
                    N seconds for a change."),
            )),
        (status = 400, description = "A `Prefer: wait` that is not whole seconds from 0 to 25 \
            (`bad_prefer`).", body = ErrorBody),
        (status = 404, description = "No job with this id, or a job of another API key \
            (`not_found`, the same answer).", body = ErrorBody),
        (status = 410, description = "The job's data was removed: it expired (`expired`, \
            `RESULT_TTL` after it became final) or was deleted (`deleted`). After \
            `TOMBSTONE_TTL` the job is 404.", body = ErrorBody),
        (status = 503, description = "The database is briefly unavailable (`unavailable`), or \
            too many requests wait on this server (`too_many_waiters`, `MAX_WAITERS`).",
            body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before trying again."))),
    ),
)]
pub async fn get_job(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path)?;
    let wait = wait::preferred(&req)?;
    let mut job = live(find_job(&state, &caller, &id).await?)?;
    let unchanged = |job: &model::JobRow| etag_matches(&req, &job.etag());
    // A long-poll: only a client that holds the current version has something to wait for.
    let applied = match wait.filter(|_| unchanged(&job)) {
        Some(secs) => {
            job = live(
                wait::for_change(&state, &id, secs, unchanged)
                    .await?
                    .ok_or(ApiError::NotFound)?,
            )?;
            Some(format!("wait={secs}"))
        }
        None => None,
    };
    let not_modified = unchanged(&job);
    let mut response = if not_modified {
        let mut response = HttpResponse::NotModified();
        response.insert_header((header::ETAG, job.etag()));
        response
    } else {
        job_ok(&job)
    };
    if let Some(applied) = applied {
        response.insert_header((PREFERENCE_APPLIED, applied));
    }
    Ok(if not_modified {
        response.finish()
    } else {
        response.json(webhooks::job_view(state.db(), &job).await?)
    })
}

/// `POST /api/jobs/{id}/cancel`: 200 with the job, or 409 when it is already final.
#[utoipa::path(
    post,
    path = "/api/jobs/{id}/cancel",
    tag = "jobs",
    summary = "Cancel a queued or running job",
    description = "A queued job never starts; a running one stops at its next chunk.",
    params(("id" = String, Path, format = "uuid", description = "The job's id (anything else is 404).")),
    responses(
        (status = 200, description = "Cancelled: the job.", body = JobView,
            headers(("ETag" = String, description = "The job's new ETag."))),
        (status = 404, description = "No job with this id, or a job of another API key \
            (`not_found`, the same answer).", body = ErrorBody),
        (status = 409, description = "The job is already final (`already_final`).",
            body = ErrorBody),
        (status = 410, description = "The job's data was removed: it expired (`expired`, \
            `RESULT_TTL` after it became final) or was deleted (`deleted`). After \
            `TOMBSTONE_TTL` the job is 404.", body = ErrorBody),
        (status = 503, description = "The database is briefly unavailable (`unavailable`).",
            body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before trying again."))),
    ),
)]
pub async fn cancel_job(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = find_job(&state, &caller, &path).await?.id;
    let job = super::cancel(&state, &id).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::ETAG, job.etag()))
        .json(webhooks::job_view(state.db(), &job).await?))
}

/// `DELETE /api/jobs/{id}`: 204; the job is cancelled first if it is queued or running.
#[utoipa::path(
    delete,
    path = "/api/jobs/{id}",
    tag = "jobs",
    summary = "Delete a job and its data",
    description = "Cancels the job if it is queued or running (it stops within about a second), \
        then removes its input, items and report at once. The job then answers `410 Gone` \
        (code `deleted`) until `TOMBSTONE_TTL` has passed, then 404. Deleting a job whose data \
        is already gone (deleted, or expired) answers 204 again: a client may retry a DELETE \
        whose answer it lost.",
    params(("id" = String, Path, format = "uuid", description = "The job's id (anything else is 404).")),
    responses(
        (status = 204, description = "Deleted: nothing of its input, items or report remains."),
        (status = 404, description = "No job with this id, or a job of another API key \
            (`not_found`, the same answer).", body = ErrorBody),
        (status = 503, description = "The database is briefly unavailable (`unavailable`).",
            body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before trying again."))),
    ),
)]
pub async fn delete_job(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = find_job(&state, &caller, &path).await?.id;
    super::delete(&state, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}
/// A comment line this often keeps proxies from closing an idle stream.
const EVENTS_KEEPALIVE: std::time::Duration = std::time::Duration::from_secs(15);

/// `GET /api/jobs/{id}/events`: Server-Sent Events, one `status` event (the job JSON) per
/// change, closed after the final state. It wakes on the job's change signals (from any process
/// with Redis, see [`crate::jobs::events`]) and re-reads the row each time; the row is the truth.
#[utoipa::path(
    get,
    path = "/api/jobs/{id}/events",
    tag = "jobs",
    summary = "Server-Sent Events of the job",
    description = "A `status` event (`data:` the job, as `GET /api/jobs/{id}` answers it, `id:` its \
        version) on every change, comment lines to keep the connection alive, and the end of the \
        stream after the final state.",
    params(("id" = String, Path, format = "uuid", description = "The job's id (anything else is 404).")),
    responses(
        (status = 200, description = "The event stream; the schema is that of each event.",
            body = StatusEvent, content_type = "text/event-stream"),
        (status = 404, description = "No job with this id, or a job of another API key \
            (`not_found`, the same answer).", body = ErrorBody),
        (status = 410, description = "The job's data was removed: it expired (`expired`, \
            `RESULT_TTL` after it became final) or was deleted (`deleted`). After \
            `TOMBSTONE_TTL` the job is 404.", body = ErrorBody),
        (status = 503, description = "The database is briefly unavailable (`unavailable`), or \
            as many event streams are open on this server as it allows (`too_many_streams`, \
            `MAX_EVENT_STREAMS`): poll `GET /api/jobs/{id}` instead, or try again later.",
            body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before trying again."))),
    ),
)]
pub async fn job_events(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = find_job(&state, &caller, &path).await?.id;
    // The stream holds its place under the cap until it ends, however it ends.
    let slot = state.streams.enter().ok_or(ApiError::TooManyStreams {
        max: state.streams.max(),
    })?;
    // Follow before the first read, so no change between the read and the wait is missed.
    let mut follower = Follower::new(&state, &id);
    let job = live(follower.read().await?.ok_or(ApiError::NotFound)?)?;
    let start = EventsState {
        slot,
        follower,
        pending: Some(job),
        last_version: -1,
        finished: false,
    };
    let events = stream::unfold(start, |mut st| async move {
        let event = st.next_event().await?;
        Some((Ok::<_, std::convert::Infallible>(event), st))
    });
    Ok(sse::Sse::from_stream(events)
        .with_keep_alive(EVENTS_KEEPALIVE)
        .customize()
        .insert_header(("X-Accel-Buffering", "no"))
        .respond_to(&req)
        .map_into_boxed_body())
}

/// Where one event stream is: the row to send next, the last version sent.
struct EventsState {
    slot: Slot,
    follower: Follower,
    pending: Option<model::JobRow>,
    last_version: i64,
    finished: bool,
}

impl EventsState {
    /// The next `status` event: the row once its version has moved, read again on each change
    /// signal or slow poll, whichever comes first. None ends the stream (after the final
    /// state, or when the job is gone or cannot be read).
    async fn next_event(&mut self) -> Option<sse::Event> {
        if self.finished {
            return None;
        }
        loop {
            if let Some(job) = self.pending.take()
                && job.version != self.last_version
            {
                self.last_version = job.version;
                self.finished = job.status.is_final();
                let view = match self.follower.view(&job).await {
                    Ok(view) => view,
                    Err(e) => {
                        let id = self.follower.id();
                        tracing::warn!(job_id = %id, error = %e, "event stream stopped");
                        return None;
                    }
                };
                let data = serde_json::to_string(&view).unwrap_or_default();
                let event = sse::Data::new(data)
                    .event("status")
                    .id(job.version.to_string());
                return Some(event.into());
            }
            // A signal that came since the last read resolves at once. A stopping server
            // ends its streams (clients reconnect elsewhere) instead of waiting on them.
            tokio::select! {
                biased;
                _ = self.slot.stopped() => return None,
                _ = self.follower.changed() => {}
            }
            match self.follower.read().await {
                // A job deleted (or expired) meanwhile has nothing more to show.
                Ok(Some(job)) if job.purged().is_some() => return None,
                Ok(Some(job)) => self.pending = Some(job),
                Ok(None) => return None,
                Err(e) => {
                    tracing::warn!(job_id = %self.follower.id(), error = %e, "event stream stopped");
                    return None;
                }
            }
        }
    }
}

/// `GET /metrics`: Prometheus text of the job rows and the queue entries.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    summary = "Prometheus metrics",
    description = "Cluster-wide gauges `sentiq_jobs{queue,status}` and \
        `sentiq_queue_entries{queue,state}`, then this process's counters and histograms: \
        `sentiq_jobs_{submitted,started,succeeded,cancelled}_total{queue}`, \
        `sentiq_jobs_failed_total{queue,code}`, `sentiq_jobs_pruned_total{reason}` (input, \
        items and report removed: `expired` by a worker's pruner, `deleted` by a web process), \
        `sentiq_tombstones_removed_total`, `sentiq_job_duration_seconds{queue}`, \
        `sentiq_job_queue_wait_seconds{queue}`, `sentiq_http_requests_total{route,method,status}`, \
        `sentiq_http_request_duration_seconds{route,method}` and \
        `sentiq_webhook_deliveries_total{outcome}` (attempts: `delivered`, `retry`, `failed`, \
        `stopped`); and the cluster-wide gauge `sentiq_webhook_deliveries_pending`.",
    responses(
        (status = 200, description = "Prometheus text format 0.0.4.", body = String,
            content_type = "text/plain"),
        (status = 503, description = "The database or queue is briefly unavailable \
            (`unavailable`).", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before trying again."))),
    ),
)]
pub async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(crate::metrics::text(&state.deps).await?))
}

/// `GET /healthz`: the process answers.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    summary = "Alive",
    responses((status = 200, description = "`{\"status\": \"ok\"}`.", body = Health)),
)]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "ok" })
}

/// `GET /readyz`: 200 when the database and the queue both answer, else 503.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    summary = "Ready: the database and the queue answer",
    responses(
        (status = 200, description = "`{\"status\": \"ready\"}`.", body = Health),
        (status = 503, description = "The database or the queue does not answer (`not_ready`).",
            body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before trying again."))),
    ),
)]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let (db, queue) = tokio::join!(state.db().ping(), state.deps.store.ping_queue());
    let problem = match (db, queue) {
        (Ok(()), Ok(())) => {
            return HttpResponse::Ok().json(Health { status: "ready" });
        }
        (Err(e), _) => {
            tracing::warn!(error = %e, "not ready: database");
            "the database is not reachable"
        }
        (_, Err(e)) => {
            tracing::warn!(error = %e, "not ready: queue");
            "the queue is not reachable"
        }
    };
    HttpResponse::ServiceUnavailable()
        .insert_header((header::RETRY_AFTER, super::errors::RETRY_AFTER_UNAVAILABLE))
        .json(serde_json::json!({"error": {"code": "not_ready", "message": problem}}))
}

#[derive(Clone, Copy)]
enum ItemsFormat {
    Csv,
    Jsonl,
}

async fn items(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    kind: ItemsFormat,
) -> Result<HttpResponse, ApiError> {
    let job = live(find_job(&state, &caller, &path).await?)?;
    let id = job.id.clone();
    if job.status != Status::Succeeded {
        return Err(ApiError::Conflict {
            code: "not_succeeded",
            message: format!(
                "the job is {}; items are available once it has succeeded",
                job.status
            ),
        });
    }
    let db = state.db().clone();
    // The first chunk decides the layout (whether the items carry their rows).
    let first = next_items(&db, &id, -1)
        .await
        .map_err(|e| ApiError::unexpected(std::io::Error::other(e)))?;
    let report = job.report();
    let layout = Arc::new(Layout::of(job.format, report.as_ref(), first.first()));
    let lang = report.as_ref().is_some_and(|r| r.languages.is_some());
    // One stored chunk per step (keyset pagination): each is one short query, so the stream
    // holds no connection between chunks and at most one decoded chunk in memory, whatever the
    // number of items.
    let start = (db, id.clone(), Some(first), -1i64, true);
    let pages = stream::unfold(Some(start), move |st| {
        let layout = layout.clone();
        async move {
            let (db, id, ready, after, first) = st?;
            let rows = match ready {
                Some(rows) => rows,
                None => match next_items(&db, &id, after).await {
                    Ok(rows) => rows,
                    Err(e) => {
                        tracing::error!(job_id = %id, error = %e, "items stream failed");
                        return Some((
                            Err(actix_web::error::ErrorInternalServerError("items")),
                            None,
                        ));
                    }
                },
            };
            if rows.is_empty() && !first {
                return None;
            }
            let bytes = match kind {
                ItemsFormat::Csv => {
                    downloads::csv(&layout, &rows, first, lang).map_err(|e| e.to_string())
                }
                ItemsFormat::Jsonl => {
                    downloads::jsonl(&layout, &rows, lang).map_err(|e| e.to_string())
                }
            };
            let bytes = match bytes {
                Ok(b) => b,
                Err(e) => return Some((Err(actix_web::error::ErrorInternalServerError(e)), None)),
            };
            let next = rows.last().map(|r| (db, id, None, r.position, false));
            Some((Ok::<_, actix_web::Error>(web::Bytes::from(bytes)), next))
        }
    });
    let (content_type, ext) = match kind {
        ItemsFormat::Csv => ("text/csv; charset=utf-8", "csv"),
        ItemsFormat::Jsonl => ("application/x-ndjson", "jsonl"),
    };
    Ok(HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"sentiq-{id}.{ext}\""),
        ))
        .streaming(pages))
}

/// The items of the next stored chunk after position `after`. When there are none the job is
/// read again: one deleted (or expired) while its items were being sent lost them all at once,
/// and its download must fail rather than end as if complete.
async fn next_items(db: &crate::db::Db, id: &str, after: i64) -> Result<Vec<ItemRow>, String> {
    let rows = model::items_after(db, id, after)
        .await
        .map_err(|e| e.to_string())?;
    if rows.is_empty() {
        match model::get(db, id).await.map_err(|e| e.to_string())? {
            Some(job) if job.purged().is_none() => {}
            _ => return Err("the job was deleted while its items were sent".into()),
        }
    }
    Ok(rows)
}

/// `GET /api/jobs/{id}/items.csv`: the scored items as CSV.
#[utoipa::path(
    get,
    path = "/api/jobs/{id}/items.csv",
    tag = "jobs",
    summary = "Per-item scores as CSV",
    description = "One row per item in input order, spreadsheet-safe (a cell that would start a \
        formula, `=`, `+`, `-`, `@`, tab or carriage return, gets a leading `'`; plain numbers \
        are left alone). A CSV upload gives its own header and every row's cells back, then \
        `neg,neu,pos,compound,label`; a text gives `position,sentence,start,end` (offsets in \
        Unicode code points, end exclusive) then the scores; JSON lines and batch documents \
        give `position,id,text` then the scores. A `lang` column follows when languages were \
        detected.",
    params(("id" = String, Path, format = "uuid", description = "The job's id (anything else is 404).")),
    responses(
        (status = 200, description = "CSV with a header row.", body = String,
            content_type = "text/csv",
            headers(("Content-Disposition" = String, description = "An attachment file name."))),
        (status = 404, description = "No job with this id, or a job of another API key \
            (`not_found`, the same answer).", body = ErrorBody),
        (status = 409, description = "The job has not succeeded (`not_succeeded`).",
            body = ErrorBody),
        (status = 410, description = "The job's data was removed: it expired (`expired`, \
            `RESULT_TTL` after it became final) or was deleted (`deleted`). After \
            `TOMBSTONE_TTL` the job is 404.", body = ErrorBody),
        (status = 503, description = "The database is briefly unavailable (`unavailable`).",
            body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before trying again."))),
    ),
)]
pub async fn items_csv(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    items(state, caller, path, ItemsFormat::Csv).await
}

/// `GET /api/jobs/{id}/items.jsonl`: the scored items as JSON lines.
#[utoipa::path(
    get,
    path = "/api/jobs/{id}/items.jsonl",
    tag = "jobs",
    summary = "Per-item scores as JSON lines",
    description = "One line per item, in input order. A JSON lines upload gives each line back \
        byte for byte with a `sentiment` object added (`neg`, `neu`, `pos`, `compound`, `label`, \
        and `lang` when languages were detected); a text gives `{position, sentence, start, \
        end, sentiment}`; batch documents give `{position, id, text, sentiment}` (the `Item` \
        schema).",
    params(("id" = String, Path, format = "uuid", description = "The job's id (anything else is 404).")),
    responses(
        (status = 200, description = "JSON lines; each line is an `Item`.", body = String,
            content_type = "application/x-ndjson",
            headers(("Content-Disposition" = String, description = "An attachment file name."))),
        (status = 404, description = "No job with this id, or a job of another API key \
            (`not_found`, the same answer).", body = ErrorBody),
        (status = 409, description = "The job has not succeeded (`not_succeeded`).",
            body = ErrorBody),
        (status = 410, description = "The job's data was removed: it expired (`expired`, \
            `RESULT_TTL` after it became final) or was deleted (`deleted`). After \
            `TOMBSTONE_TTL` the job is 404.", body = ErrorBody),
        (status = 503, description = "The database is briefly unavailable (`unavailable`).",
            body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before trying again."))),
    ),
)]
pub async fn items_jsonl(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    items(state, caller, path, ItemsFormat::Jsonl).await
}

// Schema-only types: bodies written out by hand (an event, a scored item line).

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
        .content_schema(Some(Ref::from_schema_name(JobView::name())))
        .description(Some("The job, as JSON: what `GET /api/jobs/{id}` answers."))
        .build()
}

/// One scored batch document, as each line of its `items.jsonl` holds it.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct Item {
    /// 0-based position of the item in the input.
    position: u64,
    /// The document's own id, else null.
    #[schema(required = true)]
    id: Option<String>,
    text: String,
    sentiment: ItemSentiment,
}

/// The scores added to every line of `items.jsonl`.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct ItemSentiment {
    neg: f64,
    neu: f64,
    pos: f64,
    compound: f64,
    /// `positive` (compound ≥ 0.05), `negative` (≤ −0.05) or `neutral`.
    #[schema(pattern = "^(positive|neutral|negative)$")]
    label: String,
    /// ISO 639-1 code of the item's language, when languages were detected and it could be told.
    #[schema(nullable = false)]
    lang: Option<String>,
}
