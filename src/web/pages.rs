//! Server-rendered pages (askama). Everything works without JavaScript; `static/app.js` only
//! makes the progress live.

use actix_multipart::{Field, Multipart};
use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};
use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use askama::Template;
use futures_util::StreamExt;

use super::caller::Caller;
use super::charts::{self, Arc as ArcChart, Histogram};
use super::errors::ApiError;
use super::input::{self, Submission};
use super::respond::{self, html, media_type};
use super::upload::{self, Upload, Uploaded};
use super::{AppState, csrf, find_job, idempotency, parse_id, submit};
use crate::analysis::{Format, Label, Report};
use crate::jobs::browse::{self, Order, View};
use crate::jobs::model::{self, JobRow, PurgeReason, Status};
use crate::jobs::store::JobStore;

pub const VISITOR_COOKIE: &str = "sentiq_visitor";
const RECENT: i64 = 12;

static CSS: &str = include_str!("../../static/app.css");
static JS: &str = include_str!("../../static/app.js");
pub async fn css() -> HttpResponse {
    respond::asset("text/css; charset=utf-8", "public, max-age=3600", CSS)
}

pub async fn js() -> HttpResponse {
    respond::asset("text/javascript; charset=utf-8", "public, max-age=3600", JS)
}

/// The visitor id from the cookie, or a new one with the cookie to set.
fn visitor(req: &HttpRequest) -> (String, Option<Cookie<'static>>) {
    if let Some(c) = req.cookie(VISITOR_COOKIE)
        && uuid::Uuid::parse_str(c.value()).is_ok()
    {
        return (c.value().to_owned(), None);
    }
    let id = uuid::Uuid::new_v4().to_string();
    let cookie = Cookie::build(VISITOR_COOKIE, id.clone())
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .max_age(CookieDuration::days(365))
        .finish();
    (id, Some(cookie))
}

pub struct RecentJob {
    pub id: String,
    pub title: String,
    pub status: String,
    pub created_at: String,
    pub created_short: String,
}

#[derive(Template)]
#[template(path = "index.html")]
struct IndexPage {
    csrf: String,
    /// The one-time token of this form ([`idempotency::form_claim`]).
    submission: String,
    recent: Vec<RecentJob>,
    error: Option<String>,
    text: String,
    max_mb: String,
    /// Just back from deleting an analysis (`/?notice=deleted`).
    deleted: bool,
}

#[derive(Template)]
#[template(path = "not_found.html")]
struct NotFoundPage;

pub fn not_found_page() -> HttpResponse {
    html(StatusCode::NOT_FOUND, NotFoundPage.render())
}

#[derive(Template)]
#[template(path = "form_closed.html")]
struct FormClosedPage;

/// `PUBLIC_FORM=false`: the form's routes answer 404, with a page that says where submissions
/// go instead.
fn form_closed_page() -> HttpResponse {
    html(StatusCode::NOT_FOUND, FormClosedPage.render())
}

#[derive(Template)]
#[template(path = "gone.html")]
struct GonePage {
    deleted: bool,
    reason: &'static str,
    kept_for: String,
}

/// The page of a job whose data was removed: 410, saying why in words.
fn gone_page(reason: PurgeReason, result_ttl: Option<std::time::Duration>) -> HttpResponse {
    let days = result_ttl.map_or(0, |ttl| ttl.as_secs()) as f64 / 86_400.0;
    let kept_for = if days >= 1.0 {
        format!(
            "{} day{}",
            days.round(),
            if days.round() == 1.0 { "" } else { "s" }
        )
    } else {
        "a while".to_owned()
    };
    let page = GonePage {
        deleted: reason == PurgeReason::Deleted,
        reason: reason.as_str(),
        kept_for,
    };
    html(StatusCode::GONE, page.render())
}

#[derive(Template)]
#[template(path = "forbidden.html")]
struct ForbiddenPage {
    back: String,
    back_label: &'static str,
    not_owner: bool,
}

/// The answer to a form post that failed the CSRF check: a page in words, and the way back to a
/// fresh copy of the form (whose load sets the token again).
fn forbidden_page(
    req: &HttpRequest,
    why: csrf::Rejection,
    back: String,
    back_label: &'static str,
) -> HttpResponse {
    tracing::warn!(
        path = req.path(),
        reason = why.reason(),
        "form post refused by the CSRF check"
    );
    html(
        StatusCode::FORBIDDEN,
        ForbiddenPage {
            back,
            back_label,
            not_owner: why == csrf::Rejection::NotOwner,
        }
        .render(),
    )
}

fn add_cookies(
    resp: &mut HttpResponse,
    cookies: impl IntoIterator<Item = Option<Cookie<'static>>>,
) {
    for c in cookies.into_iter().flatten() {
        let _ = resp.add_cookie(&c);
    }
}

async fn index_page(
    state: &AppState,
    csrf: String,
    visitor: &str,
    error: Option<String>,
    text: String,
    (status, deleted): (StatusCode, bool),
) -> HttpResponse {
    let recent = match model::recent_for_visitor(state.db(), visitor, RECENT).await {
        Ok(rows) => rows
            .into_iter()
            .map(|j| RecentJob {
                created_short: j.created_at.minute_utc(),
                id: j.id,
                title: if j.title.is_empty() {
                    "Untitled".into()
                } else {
                    j.title
                },
                status: j.status.to_string(),
                created_at: j.created_at.to_string(),
            })
            .collect(),
        Err(e) => {
            tracing::error!(error = %e, "recent jobs not listed");
            Vec::new()
        }
    };
    let max_mb = format!(
        "{}",
        state.config.http.max_body_bytes as f64 / (1 << 20) as f64
    );
    html(
        status,
        IndexPage {
            csrf,
            submission: uuid::Uuid::new_v4().to_string(),
            recent,
            error,
            text,
            max_mb,
            deleted,
        }
        .render(),
    )
}

/// `GET /`: the form and the visitor's own recent jobs (`?notice=deleted`: after a Delete).
pub async fn index(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    if !state.config.clients.public_form {
        return form_closed_page();
    }
    let (visitor, cookie) = visitor(&req);
    let (token, token_cookie) = csrf::token(&req);
    let deleted = serde_urlencoded::from_str::<Vec<(String, String)>>(req.query_string())
        .is_ok_and(|q| q.iter().any(|(k, v)| k == "notice" && v == "deleted"));
    let status = (StatusCode::OK, deleted);
    let mut resp = index_page(&state, token, &visitor, None, String::new(), status).await;
    add_cookies(&mut resp, [cookie, token_cookie]);
    resp
}

/// What the person typed, kept to re-fill the form after an error (when small).
const KEEP_TEXT: usize = 200_000;

/// Why a form post was not turned into a job.
enum FormError {
    Forged(csrf::Rejection),
    Api(ApiError),
}

impl From<ApiError> for FormError {
    fn from(e: ApiError) -> Self {
        FormError::Api(e)
    }
}

/// `POST /analyses` (urlencoded or multipart) → 303 to the status page, the form again with the
/// error in words, or 403 when the CSRF check fails.
pub async fn create(
    req: HttpRequest,
    state: web::Data<AppState>,
    mut payload: web::Payload,
) -> HttpResponse {
    if !state.config.clients.public_form {
        // Read (within bounds) and dropped, so the client sees the page, not a reset.
        input::drain(
            &mut payload,
            input::form_drain_limit(state.config.http.max_body_bytes),
        )
        .await;
        return form_closed_page();
    }
    let mut kept = String::new();
    let sub = match read_form(&req, payload, &state, &mut kept).await {
        Ok(sub) => Ok(sub),
        Err(FormError::Forged(why)) => {
            return forbidden_page(&req, why, "/".into(), "Back to the form");
        }
        Err(FormError::Api(e)) => Err(e),
    };
    let (visitor, cookie) = visitor(&req);
    let result = match sub {
        // Checked after the form was read, so a refused person gets their text back.
        Ok((sub, token, _permit)) => match state.submit_limit.check(&req, None).await {
            Ok(()) => {
                let claim = token.and_then(|t| {
                    let fields = serde_json::to_vec(&sub.fields).unwrap_or_default();
                    let digest = sub.input.digest();
                    let request = [sub.format.as_str().as_bytes(), &fields, &digest];
                    idempotency::form_claim(
                        &t,
                        idempotency::fingerprint(&request),
                        state.config.limits.idempotency_ttl,
                    )
                });
                submit(&state, sub, Some(visitor.clone()), None, claim)
                    .await
                    .map(|s| s.id())
            }
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    match result {
        Ok(id) => {
            let mut resp = HttpResponse::SeeOther()
                .insert_header((header::LOCATION, format!("/analyses/{id}")))
                .finish();
            add_cookies(&mut resp, [cookie]);
            resp
        }
        Err(e) => {
            if let ApiError::Unexpected(cause) = &e {
                tracing::error!(error = %cause, "form submission failed");
            }
            let message = form_message(&e, state.config.http.max_body_bytes);
            // The form may be refused before its token was read (too large, unreadable), so the
            // re-rendered form sets the token cookie when it is missing, as `GET /` does.
            let (token, token_cookie) = csrf::token(&req);
            let mut resp = index_page(
                &state,
                token,
                &visitor,
                Some(message),
                kept,
                (e.status_code(), false),
            )
            .await;
            add_cookies(&mut resp, [cookie, token_cookie]);
            if let ApiError::RateLimited { retry_after_secs }
            | ApiError::Overloaded { retry_after_secs } = e
                && let Ok(value) = header::HeaderValue::from_str(&retry_after_secs.to_string())
            {
                resp.headers_mut().insert(header::RETRY_AFTER, value);
            }
            resp
        }
    }
}

/// Refuse a post that the browser marks as cross-site before any of its body is read. The body
/// is still read and dropped (within bounds) so the browser shows the page, not a reset.
async fn refuse_cross_site(
    req: &HttpRequest,
    payload: &mut web::Payload,
    drain_limit: u64,
) -> Result<(), csrf::Rejection> {
    if !csrf::cross_site(req) {
        return Ok(());
    }
    let declared = upload::declared_length(req);
    if declared.is_none_or(|len| len <= drain_limit) {
        input::drain(payload, drain_limit).await;
    }
    Err(csrf::Rejection::CrossSite)
}

fn form_message(e: &ApiError, limit: usize) -> String {
    match e {
        ApiError::PayloadTooLarge { .. } => format!(
            "The text or file is too large: the limit is {} MiB. Split it into smaller parts.",
            limit as f64 / (1 << 20) as f64
        ),
        ApiError::EmptyInput(_) => {
            "There is nothing to analyse: paste some text or choose a file.".into()
        }
        ApiError::UnsupportedMediaType(_) => {
            "This form could not be read. Please submit it from the page.".into()
        }
        other => {
            let mut m = other.to_string();
            if let Some(first) = m.get(..1) {
                let upper = first.to_uppercase();
                m.replace_range(..1, &upper);
            }
            if !m.ends_with('.') {
                m.push('.');
            }
            m
        }
    }
}

async fn read_form(
    req: &HttpRequest,
    mut payload: web::Payload,
    state: &AppState,
    kept: &mut String,
) -> Result<
    (
        Submission,
        Option<String>,
        tokio::sync::OwnedSemaphorePermit,
    ),
    FormError,
> {
    let limit = state.config.http.max_body_bytes;
    refuse_cross_site(req, &mut payload, input::form_drain_limit(limit))
        .await
        .map_err(FormError::Forged)?;
    let ct = media_type(req);
    let declared = upload::declared_length(req);
    let (text, file, named, token, permit) = if ct.starts_with("application/x-www-form-urlencoded")
    {
        // Held whole: the body and the decoded fields.
        let share = declared.map_or(limit, |len| len.min(limit as u64) as usize);
        let permit = state.body_budget.admit(share.saturating_mul(2)).await?;
        let body = input::read_body(req, payload, limit, input::form_drain_limit(limit)).await?;
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&body)
            .map_err(|_| ApiError::InvalidUtf8("the text is not valid UTF-8 text".into()))?;
        let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        csrf::verify(req, get(csrf::FIELD).as_deref().map(str::as_bytes))
            .map_err(FormError::Forged)?;
        let named = input::NamedFields {
            column: get("column"),
            id_column: get("id_column"),
            group_by: get("group_by"),
            group_by_period: get("group_by_period"),
            rating_column: get("rating_column"),
        };
        (
            Uploaded::whole(get("text").unwrap_or_default().into_bytes()),
            None,
            named,
            get(idempotency::FORM_FIELD),
            permit,
        )
    } else if ct.starts_with("multipart/form-data") {
        // The text and the file are read as uploads, a part at a time.
        let permit = state
            .body_budget
            .admit(2 * upload::upload_share(declared))
            .await?;
        let (text, file, named, token) =
            read_multipart(req, payload, limit, &state.deps.store).await?;
        (text, file, named, token, permit)
    } else {
        return Err(ApiError::UnsupportedMediaType(
            "the form must be sent as multipart/form-data or urlencoded".into(),
        )
        .into());
    };
    if let Uploaded::Whole { body, .. } = &text
        && body.len() <= KEEP_TEXT
        && let Ok(t) = std::str::from_utf8(body)
    {
        *kept = t.to_owned();
    }
    let submission = match file {
        Some((name, file)) if !file.is_empty() => {
            let format = Format::from_file_name(&name);
            let title = if name.is_empty() { None } else { Some(name) };
            input::from_upload(file, format, named.parse()?, title)
        }
        // The column fields belong to a file; typed text is analysed as a document.
        _ => input::from_upload(text, Format::Text, Default::default(), None),
    }?;
    Ok((submission, token, permit))
}

/// The text, the file (name and content), the named columns and the one-time submission token.
type FormParts = (
    Uploaded,
    Option<(String, Uploaded)>,
    input::NamedFields,
    Option<String>,
);

/// Read and drop the rest of a refused multipart body (up to `drain_limit` bytes in all, `seen`
/// of them already read) so the browser gets the page instead of a reset connection. `field` is
/// the part being read, if it has not ended (a field panics when polled past its end).
async fn drain_multipart(field: Option<Field>, mut mp: Multipart, mut seen: u64, drain_limit: u64) {
    let _ = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        if let Some(mut field) = field {
            while let Some(Ok(chunk)) = field.next().await {
                seen += chunk.len() as u64;
                if seen > drain_limit {
                    return;
                }
            }
        }
        while let Some(Ok(mut rest)) = mp.next().await {
            while let Some(Ok(chunk)) = rest.next().await {
                seen += chunk.len() as u64;
                if seen > drain_limit {
                    return;
                }
            }
        }
    })
    .await;
}

/// Longer than any token: a `csrf` part past this is not one of ours.
const MAX_TOKEN_PART: usize = 256;

/// Read a multipart form. Its first part must be the CSRF token, checked before any other part
/// is read, so an upload is never held (let alone stored) for a forged post.
async fn read_multipart(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
    store: &JobStore,
) -> Result<FormParts, FormError> {
    let mut payload = payload;
    let drain_limit = input::form_drain_limit(limit);
    refuse_declared_oversize(req, &mut payload, limit, drain_limit).await?;
    let mut mp = Multipart::new(req.headers(), payload);
    let (mut total, mut token_checked) = (0usize, false);
    let (mut text, mut file, mut token) = (Uploaded::whole(Vec::new()), None, None);
    let mut named = input::NamedFields::default();
    while let Some(field) = mp.next().await {
        let mut field = field.map_err(unreadable_form)?;
        let name = field.name().unwrap_or("").to_owned();
        if !token_checked {
            let (token, ended) = read_token_part(&mut field, &name, &mut total).await?;
            let submitted = (name == csrf::FIELD).then_some(token.as_slice());
            if let Err(why) = csrf::verify(req, submitted) {
                let rest = (!ended).then_some(field);
                drain_multipart(rest, mp, total as u64, drain_limit).await;
                return Err(FormError::Forged(why));
            }
            token_checked = true;
            continue;
        }
        let filename = field
            .content_disposition()
            .and_then(|cd| cd.get_filename())
            .map(str::to_owned);
        if name == "text" || name == "file" {
            let read = match read_upload(&mut field, &mut total, limit, store).await {
                Ok(read) => read,
                Err(e) => {
                    drain_multipart(Some(field), mp, total as u64, drain_limit).await;
                    return Err(e.into());
                }
            };
            let Some(read) = read else {
                drain_multipart(Some(field), mp, total as u64, drain_limit).await;
                return Err(ApiError::PayloadTooLarge { limit }.into());
            };
            match name.as_str() {
                "text" => text = read,
                _ => file = Some((filename.unwrap_or_default(), read)),
            }
            continue;
        }
        let Some(buf) = read_part(&mut field, &mut total, limit).await? else {
            drain_multipart(Some(field), mp, total as u64, drain_limit).await;
            return Err(ApiError::PayloadTooLarge { limit }.into());
        };
        match name.as_str() {
            "column" | "id_column" | "group_by" | "group_by_period" | "rating_column" => {
                let value = String::from_utf8(buf)
                    .map_err(|_| ApiError::InvalidUtf8(format!("the field {name} is not UTF-8")))?;
                let slot = match name.as_str() {
                    "column" => &mut named.column,
                    "id_column" => &mut named.id_column,
                    "group_by" => &mut named.group_by,
                    "group_by_period" => &mut named.group_by_period,
                    _ => &mut named.rating_column,
                };
                *slot = Some(value);
            }
            idempotency::FORM_FIELD => token = String::from_utf8(buf).ok(),
            _ => {}
        }
    }
    if !token_checked {
        // No part at all, so no token either.
        return Err(FormError::Forged(csrf::Rejection::NoToken));
    }
    Ok((text, file, named, token))
}

fn unreadable_form(e: impl std::error::Error + 'static) -> ApiError {
    ApiError::unreadable("the form", &e)
}

/// Refuse a form whose declared length is already over the limit, before reading any of it
/// (draining a moderately larger body, so the client sees the answer rather than a reset).
async fn refuse_declared_oversize(
    req: &HttpRequest,
    payload: &mut web::Payload,
    limit: usize,
    drain_limit: u64,
) -> Result<(), FormError> {
    if let Some(len) = upload::declared_length(req)
        && len > limit as u64 + 64 * 1024
    {
        if len <= drain_limit {
            input::drain(payload, drain_limit).await;
        }
        return Err(ApiError::PayloadTooLarge { limit }.into());
    }
    Ok(())
}

/// The first part's bytes when it is the CSRF token (at most [`MAX_TOKEN_PART`] and a chunk),
/// and whether the part was read to its end.
async fn read_token_part(
    field: &mut actix_multipart::Field,
    name: &str,
    total: &mut usize,
) -> Result<(Vec<u8>, bool), ApiError> {
    let mut token = Vec::new();
    if name != csrf::FIELD {
        return Ok((token, false));
    }
    while let Some(chunk) = field.next().await {
        let chunk = chunk.map_err(unreadable_form)?;
        *total += chunk.len();
        token.extend_from_slice(&chunk);
        if token.len() > MAX_TOKEN_PART {
            return Ok((token, false));
        }
    }
    Ok((token, true))
}

/// Most bytes of a form field other than the text and the file (column names, tokens), which
/// are held whole.
const MAX_FIELD_BYTES: usize = 64 << 10;

/// The text or file part of a form, read as an upload; None once the form's `total` passes
/// `limit` (the rest is not read).
async fn read_upload(
    field: &mut actix_multipart::Field,
    total: &mut usize,
    limit: usize,
    store: &JobStore,
) -> Result<Option<Uploaded>, ApiError> {
    let mut upload = Upload::new(store.clone(), limit);
    while let Some(chunk) = field.next().await {
        let chunk = chunk.map_err(unreadable_form)?;
        *total += chunk.len();
        if *total > limit {
            return Ok(None);
        }
        upload.push(&chunk).await?;
    }
    Ok(Some(upload.finish().await?))
}

/// A whole part, or None once the form's `total` passes `limit` or the part passes
/// [`MAX_FIELD_BYTES`] (the rest is not read).
async fn read_part(
    field: &mut actix_multipart::Field,
    total: &mut usize,
    limit: usize,
) -> Result<Option<Vec<u8>>, ApiError> {
    let mut buf = Vec::new();
    while let Some(chunk) = field.next().await {
        let chunk = chunk.map_err(unreadable_form)?;
        *total += chunk.len();
        if *total > limit || buf.len() + chunk.len() > MAX_FIELD_BYTES {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Some(buf))
}

pub struct Chip {
    pub name: &'static str,
    pub class: &'static str,
    pub count: String,
    pub pct: String,
}

pub struct Line {
    /// The item's id when it has one, else its 1-based position.
    pub label: String,
    pub text: String,
    pub score: String,
}

/// One row of the groups table.
pub struct GroupRow {
    pub key: String,
    pub count: String,
    pub mean: String,
    pub class: &'static str,
    pub interval: String,
    pub pos: String,
    pub neu: String,
    pub neg: String,
    pub other: bool,
}

/// The groups of a `group_by` column.
pub struct GroupsView {
    pub column: String,
    /// Dates: a time series; else a bar chart.
    pub dates: bool,
    pub period: &'static str,
    pub rows: Vec<GroupRow>,
    pub bars: charts::GroupBars,
    pub series: charts::LineChart,
    /// What the groups leave out, for a person ("" when nothing).
    pub notes: String,
}

/// Agreement with the rows' ratings.
pub struct AgreementView {
    pub column: String,
    pub pairs: String,
    pub pearson: String,
    pub spearman: String,
    pub spearman_note: String,
    pub chart: charts::LineChart,
    pub rows: Vec<(String, String, String, &'static str)>,
}

pub struct ReportView {
    pub items: String,
    pub unit: &'static str,
    pub mean: String,
    pub mean_class: &'static str,
    pub elapsed: String,
    pub chips: Vec<Chip>,
    pub positive: Vec<Line>,
    pub negative: Vec<Line>,
    pub arc_len: usize,
    pub groups: Option<GroupsView>,
    pub agreement: Option<AgreementView>,
    pub rating_note: String,
    /// The warning when many items are not English ("" when none).
    pub language_warning: String,
    /// Items per language, most first, when languages were detected.
    pub languages: Vec<(String, String)>,
}

pub struct ErrorView {
    pub message: String,
}

#[derive(Template)]
#[template(path = "status.html")]
struct StatusPage {
    csrf: String,
    id: String,
    title: String,
    status: String,
    is_final: bool,
    format_label: &'static str,
    size_label: String,
    created_at: String,
    created_short: String,
    percent: u32,
    progress_label: String,
    error: Option<ErrorView>,
    report: Option<ReportView>,
    hist: Histogram,
    arc: ArcChart,
    chart_w: f64,
    chart_h: f64,
    /// The page is the visitor's own job: it has a Delete button.
    own: bool,
    /// The table of the items (a succeeded job's only).
    table: Option<TableView>,
    /// When the job's data will be removed, for a person ("" when not final, or kept forever).
    expires: String,
    expires_at: String,
}

fn size_label(bytes: i64) -> String {
    let b = bytes.max(0) as f64;
    if b >= (1 << 20) as f64 {
        format!("{:.1} MiB", b / (1 << 20) as f64)
    } else if b >= 1024.0 {
        format!("{:.1} KiB", b / 1024.0)
    } else {
        format!("{bytes} bytes")
    }
}

/// What a format's items are called on the page.
fn unit(format: Format) -> &'static str {
    match format {
        Format::Text => "sentences",
        Format::Csv => "rows",
        Format::Jsonl => "lines",
        Format::Documents => "documents",
    }
}

fn report_view(r: &Report, format: Format) -> ReportView {
    let total = r.items.max(1) as f64;
    let chip = |name, class, count: u64| Chip {
        name,
        class,
        count: charts::thousands(count),
        pct: format!("{:.1}%", 100.0 * count as f64 / total),
    };
    let line = |h: &crate::analysis::Highlight| Line {
        label: h
            .id
            .clone()
            .filter(|id| !id.is_empty())
            .unwrap_or_else(|| charts::thousands(h.position + 1)),
        text: if h.truncated {
            format!("{}…", h.text)
        } else {
            h.text.clone()
        },
        score: format!("{:+.4}", h.compound),
    };
    ReportView {
        items: charts::thousands(r.items),
        unit: unit(format),
        mean: format!("{:+.3}", r.mean_compound),
        mean_class: crate::analysis::Label::of(r.mean_compound).class(),
        elapsed: if r.elapsed_ms >= 1000.0 {
            format!("{:.2} s", r.elapsed_ms / 1000.0)
        } else {
            format!("{:.0} ms", r.elapsed_ms)
        },
        chips: vec![
            chip("Positive", "pos", r.labels.positive),
            chip("Neutral", "neu", r.labels.neutral),
            chip("Negative", "neg", r.labels.negative),
        ],
        positive: r.most_positive.iter().map(line).collect(),
        negative: r.most_negative.iter().map(line).collect(),
        arc_len: r.arc.len(),
        groups: r.groups.as_ref().map(groups_view),
        agreement: r.agreement.as_ref().map(agreement_view),
        rating_note: r.rating_note.clone().unwrap_or_default(),
        language_warning: r
            .languages
            .as_ref()
            .and_then(|l| l.warning.clone())
            .unwrap_or_default(),
        languages: r
            .languages
            .as_ref()
            .map(|l| {
                l.counts
                    .iter()
                    .map(|c| (c.lang.clone(), charts::thousands(c.items)))
                    .collect()
            })
            .unwrap_or_default(),
    }
}

fn percent_of(part: u64, whole: u64) -> String {
    format!("{:.0}%", 100.0 * part as f64 / whole.max(1) as f64)
}

fn group_row(g: &crate::analysis::groups::Group, other: bool) -> GroupRow {
    GroupRow {
        key: g.key.clone(),
        count: charts::thousands(g.count),
        mean: format!("{:+.3}", g.mean_compound),
        class: crate::analysis::Label::of(g.mean_compound).class(),
        interval: match g.ci95 {
            Some([lo, hi]) => format!("{lo:+.3} to {hi:+.3}"),
            None => "–".into(),
        },
        pos: percent_of(g.labels.positive, g.count),
        neu: percent_of(g.labels.neutral, g.count),
        neg: percent_of(g.labels.negative, g.count),
        other,
    }
}

fn groups_view(summary: &crate::analysis::report::GroupSummary) -> GroupsView {
    use crate::analysis::groups::{GroupKind, Period};
    let g = &summary.grouping;
    let mut rows: Vec<GroupRow> = g.groups.iter().map(|x| group_row(x, false)).collect();
    if let Some(other) = &g.other {
        rows.push(group_row(other, true));
    }
    let mut notes = Vec::new();
    if g.missing > 0 {
        notes.push(format!(
            "{} items have no value",
            charts::thousands(g.missing)
        ));
    }
    if g.unparsed > 0 {
        notes.push(format!(
            "{} values are not dates and are left out",
            charts::thousands(g.unparsed)
        ));
    }
    if g.truncated {
        notes.push(
            "the column has too many distinct values to follow them all: values first seen \
             late in the input are counted in \"other\""
                .into(),
        );
    }
    GroupsView {
        column: summary.column.clone(),
        dates: g.kind == GroupKind::Dates,
        period: match g.period {
            Some(Period::Day) => "day",
            Some(Period::Week) => "week",
            Some(Period::Month) => "month",
            None => "",
        },
        rows,
        bars: charts::group_bars(g),
        series: charts::series(g),
        notes: notes.join("; "),
    }
}

fn agreement_view(summary: &crate::analysis::report::RatingSummary) -> AgreementView {
    let a = &summary.agreement;
    let coefficient = |v: Option<f64>| v.map_or("–".to_owned(), |v| format!("{v:+.3}"));
    AgreementView {
        column: summary.column.clone(),
        pairs: charts::thousands(a.pairs),
        pearson: coefficient(a.pearson),
        spearman: coefficient(a.spearman),
        spearman_note: a.spearman_note.clone().unwrap_or_default(),
        chart: charts::rating_chart(a),
        rows: a
            .by_rating
            .iter()
            .map(|r| {
                let class = crate::analysis::Label::of(r.mean_compound).class();
                (
                    format!("{}", r.rating),
                    charts::thousands(r.count),
                    format!("{:+.3}", r.mean_compound),
                    class,
                )
            })
            .collect(),
    }
}

fn empty_report() -> Report {
    crate::analysis::report::Aggregator::new().finish(Format::Text, 0.0)
}

fn status_page(job: &JobRow, csrf: String, own: bool, table: Option<TableView>) -> StatusPage {
    let status = job.status;
    let report = if status == Status::Succeeded {
        job.report()
    } else {
        None
    };
    let chart_source = report.clone().unwrap_or_else(empty_report);
    let percent = (job.fraction() * 100.0).round() as u32;
    let progress_label = match status {
        Status::Queued => "Waiting for a worker…".to_owned(),
        Status::Running => format!("Analysing… {percent}%"),
        _ => String::new(),
    };
    StatusPage {
        csrf,
        id: job.id.clone(),
        title: if job.title.is_empty() {
            "Analysis".into()
        } else {
            job.title.clone()
        },
        status: job.status.to_string(),
        is_final: status.is_final(),
        format_label: match job.format {
            Format::Text => "Text",
            Format::Csv => "CSV",
            Format::Jsonl => "JSONL",
            Format::Documents => "Documents",
        },
        size_label: size_label(job.input_bytes),
        created_at: job.created_at.to_string(),
        created_short: job.created_at.minute_utc(),
        percent,
        progress_label,
        error: match status {
            Status::Failed | Status::Cancelled => Some(ErrorView {
                message: job
                    .error_message
                    .clone()
                    .unwrap_or_else(|| "the analysis did not finish".into()),
            }),
            _ => None,
        },
        report: report.as_ref().map(|r| report_view(r, job.format)),
        hist: charts::histogram(&chart_source),
        arc: charts::arc(&chart_source),
        chart_w: charts::WIDTH,
        chart_h: charts::HEIGHT,
        own,
        table,
        expires: job.expires_at.map(|t| t.minute_utc()).unwrap_or_default(),
        expires_at: job.expires_at.map(|t| t.to_string()).unwrap_or_default(),
    }
}

/// The items table's part of a status page's query (the last of each when repeated);
/// anything else in it is ignored.
#[derive(Debug, Default)]
struct TableQuery {
    sort: Option<String>,
    label: Option<String>,
    page: Option<String>,
}

impl TableQuery {
    fn parse(query: &str) -> Result<TableQuery, String> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query)
            .map_err(|_| "The address's query is not readable.".to_owned())?;
        let mut q = TableQuery::default();
        for (name, value) in pairs {
            match name.as_str() {
                "sort" => q.sort = Some(value),
                "label" => q.label = Some(value),
                "page" => q.page = Some(value),
                _ => {}
            }
        }
        Ok(q)
    }
}

/// The labels a table can be filtered by, and their names in its menu.
const TABLE_LABELS: [(Option<Label>, &str); 4] = [
    (None, "All labels"),
    (Some(Label::Positive), "Positive"),
    (Some(Label::Neutral), "Neutral"),
    (Some(Label::Negative), "Negative"),
];

/// A table's label filter as in its URL (`all` for none).
fn label_param(label: Option<Label>) -> &'static str {
    label.map_or("all", Label::as_str)
}

/// The orders of a table, as in its URL and its menu.
fn order_name(order: Order) -> &'static str {
    match order {
        Order::Position => "Input order",
        Order::ScoreDesc => "Most positive first",
        Order::ScoreAsc => "Most negative first",
    }
}

/// The table's view from the query, or what is wrong with it, for a person.
fn table_view(q: &TableQuery) -> Result<View, String> {
    let mut view = View {
        page: 1,
        ..View::default()
    };
    if let Some(sort) = q.sort.as_deref().filter(|s| !s.is_empty()) {
        view.order = Order::parse(sort).ok_or_else(|| {
            let known: Vec<&str> = Order::ALL.iter().map(|o| o.as_str()).collect();
            format!("“sort” must be one of {}, not “{sort}”.", known.join(", "))
        })?;
    }
    if let Some(label) = q.label.as_deref().filter(|s| !s.is_empty()) {
        view.label = TABLE_LABELS
            .iter()
            .map(|&(l, _)| l)
            .find(|&l| label_param(l) == label)
            .ok_or_else(|| {
                format!("“label” must be one of all, positive, neutral, negative, not “{label}”.")
            })?;
    }
    if let Some(page) = q.page.as_deref().filter(|s| !s.is_empty()) {
        view.page = page
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|&p| p >= 1)
            .ok_or_else(|| format!("“page” must be a whole number from 1, not “{page}”."))?;
    }
    Ok(view)
}

/// The address of a view of job `id`'s table.
fn table_href(id: &str, view: View) -> String {
    let mut query = Vec::new();
    if view.order != Order::Position {
        query.push(format!("sort={}", view.order.as_str()));
    }
    if let Some(label) = view.label {
        query.push(format!("label={}", label.as_str()));
    }
    if view.page > 1 {
        query.push(format!("page={}", view.page));
    }
    if query.is_empty() {
        format!("/analyses/{id}#items")
    } else {
        format!("/analyses/{id}?{}#items", query.join("&"))
    }
}

/// Characters of an item's text the table shows (the downloads have it all).
const TABLE_TEXT_CHARS: usize = 300;

/// One row of the items table.
pub struct TableRow {
    /// The item's id when it has one, else its 1-based position.
    pub label: String,
    pub text: String,
    pub score: String,
    pub class: &'static str,
    pub label_name: &'static str,
}

/// The items table of a succeeded job: a page of items, the form that chooses the view, and
/// links to the other pages. Plain links and a GET form, so it works without JavaScript.
pub struct TableView {
    pub rows: Vec<TableRow>,
    /// What the rows are, for a person: "Negative rows 51–100 of 3,210, most negative first".
    pub caption: String,
    pub sorts: Vec<(&'static str, &'static str, bool)>,
    pub labels: Vec<(&'static str, &'static str, bool)>,
    pub page: u64,
    pub pages: u64,
    pub pages_label: String,
    pub first: Option<String>,
    pub previous: Option<String>,
    pub next: Option<String>,
    pub last: Option<String>,
    /// The hidden fields that keep the view when the page number is changed.
    pub sort: &'static str,
    pub label: &'static str,
}

impl TableView {
    fn new(job: &JobRow, view: View, page: browse::Page) -> TableView {
        let unit = unit(job.format);
        let shown = View {
            page: page.page,
            ..view
        };
        let at = |page: u64| table_href(&job.id, View { page, ..shown });
        let caption = if page.matching == 0 {
            match view.label {
                None => format!("No {unit}."),
                Some(l) => format!("No {} {unit}.", l.as_str()),
            }
        } else {
            let from = (page.page - 1) * browse::PAGE_ITEMS + 1;
            let to = from + page.items.len() as u64 - 1;
            let what = match view.label {
                None => unit.to_owned(),
                Some(l) => format!("{} {unit}", l.as_str()),
            };
            let mut caption = format!(
                "{what} {}–{} of {}, {}",
                charts::thousands(from),
                charts::thousands(to),
                charts::thousands(page.matching),
                order_name(view.order).to_lowercase(),
            );
            if let Some(first) = caption.get_mut(..1) {
                first.make_ascii_uppercase();
            }
            caption
        };
        TableView {
            rows: page
                .items
                .iter()
                .map(|item| {
                    let label = Label::of(item.compound);
                    let (text, cut) = match item.text.char_indices().nth(TABLE_TEXT_CHARS) {
                        Some((at, _)) => (&item.text[..at], true),
                        None => (item.text.as_str(), false),
                    };
                    TableRow {
                        label: item
                            .item_id
                            .clone()
                            .filter(|id| !id.is_empty())
                            .unwrap_or_else(|| {
                                charts::thousands(u64::try_from(item.position).unwrap_or(0) + 1)
                            }),
                        text: if cut {
                            format!("{text}…")
                        } else {
                            text.to_owned()
                        },
                        score: format!("{:+.4}", item.compound),
                        class: label.class(),
                        label_name: label.as_str(),
                    }
                })
                .collect(),
            caption,
            sorts: Order::ALL
                .iter()
                .map(|&o| (o.as_str(), order_name(o), o == view.order))
                .collect(),
            labels: TABLE_LABELS
                .iter()
                .map(|&(l, title)| (label_param(l), title, l == view.label))
                .collect(),
            page: page.page,
            pages: page.pages,
            pages_label: charts::thousands(page.pages),
            first: (page.page > 1).then(|| at(1)),
            previous: (page.page > 1).then(|| at(page.page - 1)),
            next: (page.page < page.pages).then(|| at(page.page + 1)),
            last: (page.page < page.pages).then(|| at(page.pages)),
            sort: view.order.as_str(),
            label: label_param(view.label),
        }
    }
}

#[derive(Template)]
#[template(path = "bad_request.html")]
struct BadRequestPage {
    message: String,
    back: String,
}

/// 400: a status page's table was asked for a view that does not exist.
fn bad_table_query(id: &str, message: String) -> HttpResponse {
    html(
        StatusCode::BAD_REQUEST,
        BadRequestPage {
            message,
            back: format!("/analyses/{id}"),
        }
        .render(),
    )
}

/// Whether the visitor who sent `req` submitted `job` (its visitor cookie is the job's).
fn owns(req: &HttpRequest, job: &JobRow) -> bool {
    job.visitor.as_deref().is_some_and(|visitor| {
        req.cookie(VISITOR_COOKIE)
            .is_some_and(|c| c.value() == visitor)
    })
}

/// `GET /analyses/{id}`.
pub async fn status(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> HttpResponse {
    match find_job(&state, &caller, &path).await {
        Ok(job) if job.purged().is_some() => {
            let reason = job.purged().unwrap_or(PurgeReason::Expired);
            gone_page(reason, state.deps.store.retention().result_ttl)
        }
        Ok(job) => {
            let table = if job.status == Status::Succeeded {
                let view = match TableQuery::parse(req.query_string()).and_then(|q| table_view(&q))
                {
                    Ok(view) => view,
                    Err(message) => return bad_table_query(&job.id, message),
                };
                match browse::page(state.db(), &job.id, view).await {
                    Ok(page) => Some(TableView::new(&job, view, page)),
                    Err(e) => return ApiError::from(e).error_response(),
                }
            } else {
                None
            };
            // A page with no form (a final job of someone else) hands out no token.
            let own = owns(&req, &job);
            let (token, cookie) = if job.status.is_final() && !own {
                (String::new(), None)
            } else {
                csrf::token(&req)
            };
            let mut resp = html(
                StatusCode::OK,
                status_page(&job, token, own, table).render(),
            );
            add_cookies(&mut resp, [cookie]);
            resp
        }
        Err(ApiError::NotFound) => not_found_page(),
        Err(e) => e.error_response(),
    }
}

/// The cancel and delete forms hold the token and nothing else: a few hundred bytes at most.
const BUTTON_BODY_LIMIT: usize = 4096;
/// Enough to read past any body a browser would send to a button's URL, so it shows the page.
const BUTTON_DRAIN_LIMIT: u64 = 64 * 1024;

/// The CSRF check of a status page's button (Cancel, Delete), before anything is changed: the
/// 403 page when it fails.
async fn check_button(
    req: &HttpRequest,
    path: &str,
    mut payload: web::Payload,
) -> Result<(), HttpResponse> {
    let back = parse_id(path).map_or_else(|_| "/".to_owned(), |id| format!("/analyses/{id}"));
    if let Err(why) = refuse_cross_site(req, &mut payload, BUTTON_DRAIN_LIMIT).await {
        return Err(forbidden_page(req, why, back, "Back to the analysis"));
    }
    // Only the page's own urlencoded form carries a token; any other body has none.
    let token = if media_type(req).starts_with("application/x-www-form-urlencoded") {
        input::read_body(req, payload, BUTTON_BODY_LIMIT, BUTTON_DRAIN_LIMIT)
            .await
            .ok()
            .and_then(|body| serde_urlencoded::from_bytes::<Vec<(String, String)>>(&body).ok())
            .and_then(|pairs| pairs.into_iter().find(|(n, _)| n == csrf::FIELD))
            .map(|(_, v)| v)
    } else {
        None
    };
    csrf::verify(req, token.as_deref().map(str::as_bytes))
        .map_err(|why| forbidden_page(req, why, back, "Back to the analysis"))
}

/// `POST /analyses/{id}/cancel` (the page's Cancel button) → back to the status page, or 403 when
/// the CSRF check fails (and nothing is cancelled).
pub async fn cancel(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    payload: web::Payload,
) -> HttpResponse {
    if let Err(refused) = check_button(&req, &path, payload).await {
        return refused;
    }
    let id = match find_job(&state, &caller, &path).await {
        Ok(job) => job.id,
        Err(ApiError::NotFound) => return not_found_page(),
        Err(e) => return e.error_response(),
    };
    match super::cancel(&state, &id).await {
        Ok(_) | Err(ApiError::Conflict { .. }) => HttpResponse::SeeOther()
            .insert_header((header::LOCATION, format!("/analyses/{}", path.as_str())))
            .finish(),
        Err(ApiError::NotFound) => not_found_page(),
        Err(ApiError::Gone(reason)) => gone_page(reason, state.deps.store.retention().result_ttl),
        Err(e) => e.error_response(),
    }
}

/// `POST /analyses/{id}/delete` (the page's Delete button, shown to the visitor who submitted
/// the job) → `/` with a notice; 403 when the CSRF check fails or the job is someone else's
/// (nothing is deleted).
pub async fn delete(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    payload: web::Payload,
) -> HttpResponse {
    if let Err(refused) = check_button(&req, &path, payload).await {
        return refused;
    }
    let job = match find_job(&state, &caller, &path).await {
        Ok(job) => job,
        Err(ApiError::NotFound) => return not_found_page(),
        Err(e) => return e.error_response(),
    };
    let id = job.id.clone();
    if job.purged().is_none() && !owns(&req, &job) {
        return forbidden_page(
            &req,
            csrf::Rejection::NotOwner,
            format!("/analyses/{id}"),
            "Back to the analysis",
        );
    }
    match super::delete(&state, &id).await {
        Ok(()) => HttpResponse::SeeOther()
            .insert_header((header::LOCATION, "/?notice=deleted"))
            .finish(),
        Err(ApiError::NotFound) => not_found_page(),
        Err(e) => e.error_response(),
    }
}
