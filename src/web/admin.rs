//! The operator dashboard at `/admin`: queue depths, the workers alive and their last heartbeat,
//! the throughput of the last hour, recent failures with a Retry button and open jobs with a
//! Cancel button.
//!
//! It exists only when `ADMIN_TOKEN` is set: otherwise every `/admin…` path answers exactly as
//! an unknown page does, so a deployment without it does not even reveal it. With the token,
//! every `/admin…` request must present it, as `Authorization: Bearer <token>` or as the
//! password of HTTP Basic (any user name, so a browser's own login prompt works); anything
//! else is a 401 that asks for Basic credentials. Tokens are compared through HMAC tags in
//! constant time.
//!
//! Browsers send Basic credentials with every request to the site, including forms posted from
//! other sites, so every action also needs the page's CSRF token (an HMAC of a fixed message
//! keyed with the admin token: only someone who knows the token can compute it) and must not
//! come from another site (`Sec-Fetch-Site`, `Origin`).

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{StatusCode, header};
use actix_web::middleware::{Next, from_fn};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use askama::Template;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::charts::{LEFT, TOP, Tick, count_ticks, f};
use super::errors::ApiError;
use super::{AppState, api, pages, parse_id};
use crate::config::{BULK, QUICK};
use crate::jobs::model::{self, JobRow};
use crate::jobs::registry::{self, ALIVE_BEATS, BEAT, WorkerRow};
use crate::jobs::stats::{self, Minute};

type HmacSha256 = Hmac<Sha256>;

/// The realm a browser shows in its login prompt.
const REALM: &str = "sentiq admin";
/// The message whose HMAC (keyed with the admin token) is the CSRF token of the forms.
const CSRF_MESSAGE: &[u8] = b"sentiq admin csrf";
/// The key under which presented and configured tokens are tagged before the comparison.
const AUTH_TAG_KEY: &[u8] = b"sentiq admin token comparison";
/// Seconds between the page's own refreshes.
const REFRESH_SECS: u32 = 10;
/// Rows of each job list.
const LIST: i64 = 50;
/// Rows of the recently cancelled list (retryable too, but rarely the point of a visit).
const CANCELLED_LIST: i64 = 20;
/// Minutes of the throughput chart.
const MINUTES: u32 = 60;
/// Most worker rows shown (a crash-looping process makes one per start).
const WORKERS_LIST: i64 = 100;

static CSS: &str = include_str!("../../static/admin.css");

/// The `/admin` routes, all behind [`guard`].
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/admin")
            .wrap(from_fn(guard))
            .route("", web::get().to(dashboard))
            .route("/", web::get().to(dashboard))
            .route("/static/admin.css", web::get().to(css))
            .route("/jobs/{id}/retry", web::post().to(retry))
            .route("/jobs/{id}/cancel", web::post().to(cancel))
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
        Some(token) if !authorized(req.headers(), token) => Some(unauthorized()),
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

/// Whether the request presents `token`.
fn authorized(headers: &header::HeaderMap, token: &str) -> bool {
    presented_token(headers).is_some_and(|presented| same_secret(&presented, token.as_bytes()))
}

/// Basic credentials are standard base64; some clients leave out the padding.
const BASIC: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

/// The token of `Authorization: Bearer <token>`, or the password of
/// `Authorization: Basic base64(user:password)`.
fn presented_token(headers: &header::HeaderMap) -> Option<Vec<u8>> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, credentials) = value.split_once(' ')?;
    let credentials = credentials.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        Some(credentials.as_bytes().to_vec())
    } else if scheme.eq_ignore_ascii_case("basic") {
        let decoded = BASIC.decode(credentials).ok()?;
        let colon = decoded.iter().position(|&b| b == b':')?;
        Some(decoded[colon + 1..].to_vec())
    } else {
        None
    }
}

/// Compare two secrets in constant time: their HMAC tags are compared with `verify_slice`,
/// which takes the same time wherever they differ, and the tags have the same length whatever
/// the secrets' lengths.
fn same_secret(presented: &[u8], expected: &[u8]) -> bool {
    let tag = |secret: &[u8]| {
        let mut mac =
            HmacSha256::new_from_slice(AUTH_TAG_KEY).expect("HMAC takes keys of any length");
        mac.update(secret);
        mac
    };
    let expected = tag(expected).finalize().into_bytes();
    tag(presented).verify_slice(&expected).is_ok()
}

fn csrf_mac(token: &str) -> HmacSha256 {
    let mut mac =
        HmacSha256::new_from_slice(token.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(CSRF_MESSAGE);
    mac
}

/// The CSRF token of the forms: hex HMAC-SHA256(key = admin token, message = "sentiq admin csrf").
pub fn csrf_token(admin_token: &str) -> String {
    hex::encode(csrf_mac(admin_token).finalize().into_bytes())
}

/// Whether `presented` (hex) is the CSRF token, compared in constant time.
fn csrf_valid(admin_token: &str, presented: &str) -> bool {
    hex::decode(presented).is_ok_and(|tag| csrf_mac(admin_token).verify_slice(&tag).is_ok())
}

/// Why an action must not run, if it must not: a missing or wrong CSRF token, or a request
/// from another site. Answered 403, and nothing is changed.
fn forbidden_reason(req: &HttpRequest, body: &[u8], admin_token: &str) -> Option<&'static str> {
    if super::csrf::cross_site(req) {
        return Some("this action was requested from another site");
    }
    let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(body).unwrap_or_default();
    let presented = fields.iter().find(|(k, _)| k == "csrf").map(|(_, v)| v);
    match presented {
        Some(p) if csrf_valid(admin_token, p) => None,
        Some(_) => Some("the form's security token is wrong; reload the dashboard and try again"),
        None => Some("the form's security token is missing; reload the dashboard and try again"),
    }
}

/// The token configured (the guard let the request through, so there is one).
fn admin_token(state: &AppState) -> &str {
    state
        .config
        .security
        .admin_token
        .as_ref()
        .map(|t| t.expose())
        .unwrap_or_default()
}

fn html(status: StatusCode, body: Result<String, askama::Error>) -> HttpResponse {
    match body {
        Ok(b) => HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header(("X-Robots-Tag", "noindex"))
            .body(b),
        Err(e) => {
            tracing::error!(error = %e, "template failed");
            HttpResponse::InternalServerError()
                .content_type("text/plain; charset=utf-8")
                .body("Something went wrong on our side; please try again.")
        }
    }
}

#[derive(Template)]
#[template(path = "admin_message.html")]
struct MessagePage<'a> {
    heading: &'a str,
    message: &'a str,
}

/// A short page for a refused or impossible action, with a way back.
fn message(status: StatusCode, heading: &str, message: &str) -> HttpResponse {
    html(status, MessagePage { heading, message }.render())
}

async fn unknown() -> HttpResponse {
    message(
        StatusCode::NOT_FOUND,
        "Not found",
        "There is nothing at this address of the dashboard.",
    )
}

async fn css() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "private, max-age=3600"))
        .body(CSS)
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
async fn cancel(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    if let Some(reason) = forbidden_reason(&req, &body, admin_token(&state)) {
        return message(StatusCode::FORBIDDEN, "Refused", reason);
    }
    match api::cancel(&state, &path).await {
        Ok(job) => {
            tracing::info!(job_id = %job.id, "job cancelled by an operator");
            back_to_dashboard()
        }
        Err(ApiError::Conflict { .. }) => {
            // api::cancel's message ("already final") reads oddly on the dashboard.
            let status = match parse_id(&path) {
                Ok(id) => model::get(state.db(), &id)
                    .await
                    .ok()
                    .flatten()
                    .map(|j| j.status),
                Err(_) => None,
            };
            action_error(ApiError::Conflict {
                code: "already_final",
                message: format!(
                    "The job has already finished ({}); only queued or running jobs can be \
                     cancelled.",
                    status.as_deref().unwrap_or("finished")
                ),
            })
        }
        Err(e) => action_error(e),
    }
}

/// `POST /admin/jobs/{id}/retry`: run a failed or cancelled job again.
async fn retry(
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
            tracing::info!(job_id = %job.id, queue = %job.queue, "job retried by an operator");
            back_to_dashboard()
        }
        Err(e) => action_error(e),
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

/// Seconds since a stored time (0 for a time in the future or unreadable).
fn seconds_since(stored: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(stored)
        .map(|t| (chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_seconds())
        .unwrap_or(0)
        .max(0)
}

/// "just now", "42 s ago", "5 min ago", "3 h ago", "2 days ago".
fn ago(stored: &str) -> String {
    let s = seconds_since(stored);
    match s {
        0 => "just now".into(),
        1..=119 => format!("{s} s ago"),
        120..=7199 => format!("{} min ago", s / 60),
        7200..=172_799 => format!("{} h ago", s / 3600),
        _ => format!("{} days ago", s / 86_400),
    }
}

/// "2026-11-22 04:50:07" (UTC) of a stored time.
fn clock(stored: &str) -> String {
    if stored.len() >= 19 {
        format!("{} {}", &stored[..10], &stored[11..19])
    } else {
        stored.to_owned()
    }
}

struct DepthView {
    queue: String,
    queued: i64,
    running: i64,
    longest_wait: String,
}

struct EntryView {
    queue: String,
    state: String,
    count: i64,
}

struct WorkerView {
    name: String,
    role: String,
    host: String,
    pid: i64,
    queues: String,
    concurrency: i64,
    started: String,
    started_at: String,
    last_seen: String,
    last_seen_ago: String,
    /// alive, dead or stopped.
    state: &'static str,
}

struct JobView {
    id: String,
    title: String,
    queue: String,
    status: String,
    attempts: i64,
    progress: String,
    created_at: String,
    created: String,
    finished_at: String,
    finished: String,
    error_code: String,
    error_message: String,
}

impl JobView {
    fn new(j: JobRow) -> JobView {
        let progress = if j.status == "running" && j.progress_total > 0 {
            format!(
                "{}%",
                (100 * j.progress_done.max(0) / j.progress_total).min(100)
            )
        } else {
            String::new()
        };
        let attempts = j.runs();
        let finished_at = j.finished_at.unwrap_or_default();
        JobView {
            created: ago(&j.created_at),
            finished: if finished_at.is_empty() {
                String::new()
            } else {
                clock(&finished_at)
            },
            id: j.id,
            title: j.title,
            queue: j.queue,
            status: j.status,
            attempts,
            progress,
            created_at: j.created_at,
            finished_at,
            error_code: j.error_code.unwrap_or_default(),
            error_message: j.error_message.unwrap_or_default(),
        }
    }
}

/// One bar segment of the throughput chart.
struct Segment {
    y: String,
    h: String,
    class: &'static str,
}

/// One minute of the throughput chart: a stack of up to three segments.
struct Column {
    minute: String,
    x: String,
    w: String,
    title: String,
    succeeded: i64,
    segments: Vec<Segment>,
}

struct Chart {
    width: String,
    height: String,
    columns: Vec<Column>,
    x_ticks: Vec<Tick>,
    y_ticks: Vec<Tick>,
    baseline_y: String,
    left: String,
    right: String,
}

/// Wider than the status page's charts: the dashboard is wider, and its ticks should come out
/// near their nominal size.
const CHART_W: f64 = 1000.0;
const CHART_H: f64 = 200.0;
const RIGHT: f64 = 12.0;
const BOTTOM: f64 = 30.0;

/// Stacked bars, one per minute (succeeded at the bottom, then failed, then cancelled), scaled
/// to the busiest minute. Only numbers and escaped text reach the SVG.
fn throughput_chart(minutes: &[Minute]) -> Chart {
    let n = minutes.len().max(1);
    let max = minutes.iter().map(Minute::total).max().unwrap_or(0).max(1);
    let plot_w = CHART_W - LEFT - RIGHT;
    let plot_h = CHART_H - TOP - BOTTOM;
    let bw = plot_w / n as f64;
    let columns = minutes
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let mut bottom = TOP + plot_h;
            let mut segments = Vec::new();
            for (count, class) in [(m.succeeded, "ok"), (m.failed, "bad"), (m.cancelled, "cxl")] {
                if count > 0 {
                    let h = plot_h * count as f64 / max as f64;
                    bottom -= h;
                    segments.push(Segment {
                        y: f(bottom),
                        h: f(h),
                        class,
                    });
                }
            }
            let time = m.minute.get(11..16).unwrap_or(&m.minute);
            Column {
                minute: m.minute.clone(),
                x: f(LEFT + i as f64 * bw + 0.5),
                w: f((bw - 1.0).max(1.0)),
                title: format!(
                    "{time} UTC: {} succeeded, {} failed, {} cancelled",
                    m.succeeded, m.failed, m.cancelled
                ),
                succeeded: m.succeeded,
                segments,
            }
        })
        .collect();
    let y_ticks = count_ticks(max.max(0) as u64, plot_h);
    let x_ticks = [
        (LEFT, format!("−{n} min"), "start"),
        (LEFT + plot_w / 2.0, format!("−{} min", n / 2), "middle"),
        (CHART_W - RIGHT, "now".to_owned(), "end"),
    ]
    .into_iter()
    .map(|(x, label, anchor)| Tick {
        x: f(x),
        y: f(CHART_H - 10.0),
        label,
        anchor,
    })
    .collect();
    Chart {
        width: f(CHART_W),
        height: f(CHART_H),
        columns,
        x_ticks,
        y_ticks,
        baseline_y: f(TOP + plot_h),
        left: f(LEFT),
        right: f(CHART_W - RIGHT),
    }
}

#[derive(Template)]
#[template(path = "admin.html")]
struct Dashboard {
    csrf: String,
    refresh_secs: u32,
    generated_at: String,
    depths: Vec<DepthView>,
    queued_total: i64,
    entries: Vec<EntryView>,
    entries_error: Option<String>,
    workers: Vec<WorkerView>,
    alive: usize,
    beat_secs: u64,
    alive_secs: u64,
    chart: Chart,
    minutes: u32,
    succeeded: i64,
    failed: i64,
    cancelled: i64,
    per_minute: String,
    failures: Vec<JobView>,
    cancelled_jobs: Vec<JobView>,
    open: Vec<JobView>,
    list_limit: i64,
}

/// Alive: seen within [`ALIVE_BEATS`] beats and not stopped.
fn worker_view(w: WorkerRow) -> WorkerView {
    let alive_for = (BEAT * ALIVE_BEATS).as_secs() as i64;
    let state = if w.stopped_at.is_some() {
        "stopped"
    } else if seconds_since(&w.last_seen) <= alive_for {
        "alive"
    } else {
        "dead"
    };
    WorkerView {
        started: ago(&w.started_at),
        last_seen_ago: ago(&w.last_seen),
        name: w.name,
        role: w.role,
        host: w.host,
        pid: w.pid,
        queues: w.queues,
        concurrency: w.concurrency,
        started_at: w.started_at,
        last_seen: w.last_seen,
        state,
    }
}

/// `GET /admin`.
async fn dashboard(state: web::Data<AppState>) -> HttpResponse {
    match dashboard_page(&state).await {
        Ok(page) => html(StatusCode::OK, page.render()),
        Err(e) => e.error_response(),
    }
}

async fn dashboard_page(state: &AppState) -> Result<Dashboard, ApiError> {
    let db = state.db();
    let (depths, minutes, workers, failures, cancelled_jobs, open, entries) = tokio::join!(
        stats::depths(db, &[QUICK, BULK]),
        stats::throughput(db, MINUTES),
        registry::list(db, WORKERS_LIST),
        stats::latest(db, "failed", LIST),
        stats::latest(db, "cancelled", CANCELLED_LIST),
        stats::open_jobs(db, LIST),
        state.deps.store.entry_counts(),
    );
    let (depths, minutes, workers) = (depths?, minutes?, workers?);
    let (failures, cancelled_jobs, open) = (failures?, cancelled_jobs?, open?);
    // The queue's own view is a bonus: a Redis outage must not take the dashboard with it,
    // that is when an operator needs it most.
    let (entries, entries_error) = match entries {
        Ok(e) => (e, None),
        Err(e) => {
            tracing::warn!(error = %e, "dashboard: queue entries not read");
            (Vec::new(), Some(e.to_string()))
        }
    };
    let mut workers: Vec<WorkerView> = workers.into_iter().map(worker_view).collect();
    // Alive first, then by last heartbeat (the list comes newest first; the sort is stable).
    workers.sort_by_key(|w| w.state != "alive");
    let alive = workers.iter().filter(|w| w.state == "alive").count();
    let (succeeded, failed, cancelled) = minutes.iter().fold((0, 0, 0), |(s, f, c), m| {
        (s + m.succeeded, f + m.failed, c + m.cancelled)
    });
    Ok(Dashboard {
        csrf: csrf_token(admin_token(state)),
        refresh_secs: REFRESH_SECS,
        generated_at: clock(&model::now()),
        queued_total: depths.iter().map(|d| d.queued).sum(),
        depths: depths
            .into_iter()
            .map(|d| DepthView {
                longest_wait: d.oldest_queued_at.as_deref().map(ago).unwrap_or_default(),
                queue: d.queue,
                queued: d.queued,
                running: d.running,
            })
            .collect(),
        entries: entries
            .into_iter()
            .map(|(queue, state, count)| EntryView {
                queue,
                state,
                count,
            })
            .collect(),
        entries_error,
        workers,
        alive,
        beat_secs: BEAT.as_secs(),
        alive_secs: (BEAT * ALIVE_BEATS).as_secs(),
        chart: throughput_chart(&minutes),
        minutes: MINUTES,
        succeeded,
        failed,
        cancelled,
        per_minute: format!(
            "{:.1}",
            (succeeded + failed + cancelled) as f64 / f64::from(MINUTES)
        ),
        failures: failures.into_iter().map(JobView::new).collect(),
        cancelled_jobs: cancelled_jobs.into_iter().map(JobView::new).collect(),
        open: open.into_iter().map(JobView::new).collect(),
        list_limit: LIST,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_decode_with_and_without_padding() {
        assert_eq!(BASIC.decode("YWRtaW46czNjcmV0").unwrap(), b"admin:s3cret");
        assert_eq!(BASIC.decode("YQ==").unwrap(), b"a");
        assert_eq!(BASIC.decode("YQ").unwrap(), b"a");
        assert!(BASIC.decode("Y").is_err());
        assert!(BASIC.decode("YW*u").is_err());
    }

    #[test]
    fn the_password_of_basic_and_the_bearer_token_are_what_is_presented() {
        let mut h = header::HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            "Basic dXNlcjpwYTpzcw==".parse().unwrap(),
        );
        assert_eq!(presented_token(&h).unwrap(), b"pa:ss");
        h.insert(header::AUTHORIZATION, "bearer  tok en ".parse().unwrap());
        assert_eq!(presented_token(&h).unwrap(), b"tok en");
        h.insert(header::AUTHORIZATION, "Digest x".parse().unwrap());
        assert!(presented_token(&h).is_none());
    }

    #[test]
    fn secrets_match_only_when_equal_whatever_their_lengths() {
        assert!(same_secret(b"token", b"token"));
        assert!(!same_secret(b"token", b"tokem"));
        assert!(!same_secret(b"token", b"token "));
        assert!(!same_secret(b"", b"token"));
    }

    #[test]
    fn the_csrf_token_is_the_hex_hmac_of_the_fixed_message_under_the_admin_token() {
        let t = csrf_token("s3cret");
        assert_eq!(t.len(), 64);
        assert!(csrf_valid("s3cret", &t));
        assert!(csrf_valid("s3cret", &t.to_uppercase()));
        assert!(!csrf_valid("other", &t));
        assert!(!csrf_valid("s3cret", &t[..62]));
        assert!(!csrf_valid("s3cret", "zz"));
        assert!(!csrf_valid("s3cret", &format!("+{}", &t[1..])));
        assert_ne!(csrf_token("a"), csrf_token("b"));
    }

    #[test]
    fn the_throughput_chart_stacks_each_minute_and_scales_to_the_busiest() {
        let minutes = vec![
            Minute {
                minute: "2026-11-29T10:00".into(),
                ..Minute::default()
            },
            Minute {
                minute: "2026-11-29T10:01".into(),
                succeeded: 2,
                failed: 1,
                cancelled: 1,
            },
            Minute {
                minute: "2026-11-29T10:02".into(),
                succeeded: 2,
                ..Minute::default()
            },
        ];
        let c = throughput_chart(&minutes);
        assert_eq!(c.columns.len(), 3);
        assert!(c.columns[0].segments.is_empty());
        let classes: Vec<_> = c.columns[1].segments.iter().map(|s| s.class).collect();
        assert_eq!(classes, ["ok", "bad", "cxl"]);
        let plot_h = CHART_H - TOP - BOTTOM;
        let heights: f64 = c.columns[1]
            .segments
            .iter()
            .map(|s| s.h.parse::<f64>().unwrap())
            .sum();
        assert!((heights - plot_h).abs() < 0.2, "{heights}");
        assert_eq!(c.columns[2].segments[0].h, f(plot_h / 2.0));
        assert_eq!(
            c.columns[1].title,
            "10:01 UTC: 2 succeeded, 1 failed, 1 cancelled"
        );
        let labels: Vec<_> = c.y_ticks.iter().map(|t| t.label.as_str()).collect();
        assert_eq!(labels, ["0", "2", "4"]);
    }
}
