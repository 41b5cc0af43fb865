//! `GET /admin`: the figures an operator checks first, read in parallel from the database and
//! the queue, turned into view models, and the throughput of the last hour drawn as an SVG chart.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError, web};
use askama::Template;

use super::auth::{admin_token, csrf_token};
use crate::jobs::model::{JobRow, Status};
use crate::jobs::registry::{self, ALIVE_BEATS, BEAT, WorkerRow};
use crate::jobs::stats::{self, Minute};
use crate::jobs::store::StoreError;
use crate::jobs::webhooks::{self, Delivery, DeliveryStatus};
use crate::timestamp::Timestamp;
use crate::web::AppState;
use crate::web::charts::{LEFT, TOP, Tick, count_ticks, f};
use crate::web::errors::ApiError;

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
        let progress = if j.status == Status::Running && j.progress_total > 0 {
            format!(
                "{}%",
                (100 * j.progress_done.max(0) / j.progress_total).min(100)
            )
        } else {
            String::new()
        };
        let attempts = j.runs();
        JobView {
            created: j.created_at.relative(),
            finished: j.finished_at.map(Timestamp::clock).unwrap_or_default(),
            id: j.id,
            title: j.title,
            queue: j.queue.to_string(),
            status: j.status.to_string(),
            attempts,
            progress,
            created_at: j.created_at.to_string(),
            finished_at: j.finished_at.map(|t| t.to_string()).unwrap_or_default(),
            error_code: j.error_code.unwrap_or_default(),
            error_message: j.error_message.unwrap_or_default(),
        }
    }
}

/// A webhook delivery whose last attempt failed.
struct DeliveryView {
    id: String,
    job_id: String,
    event: String,
    url: String,
    status: String,
    attempts: i64,
    /// `HTTP 500 Internal Server Error`, `no answer within 10 s`...
    last_error: String,
    last_attempt_at: String,
    last_attempt: String,
    /// When the next attempt is due (pending ones), for a person.
    next_attempt: String,
}

impl DeliveryView {
    fn new(d: Delivery) -> DeliveryView {
        let next_attempt = match (d.status, d.next_attempt_at) {
            (DeliveryStatus::Pending, Some(at)) if at > Timestamp::now() => {
                format!("in {} s", Timestamp::now().seconds_until(at).ceil())
            }
            (DeliveryStatus::Pending, _) => "now".into(),
            _ => String::new(),
        };
        DeliveryView {
            last_attempt: d
                .last_attempt_at
                .map(Timestamp::relative)
                .unwrap_or_default(),
            last_attempt_at: d.last_attempt_at.map(|t| t.to_string()).unwrap_or_default(),
            id: d.id,
            job_id: d.job_id,
            event: d.event,
            url: d.url,
            status: d.status.to_string(),
            attempts: d.attempts,
            last_error: d.last_error.unwrap_or_default(),
            next_attempt,
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
    failing_webhooks: Vec<DeliveryView>,
    list_limit: i64,
    storage: StorageView,
    /// API keys not revoked (the list and usage are on `/admin/keys`).
    api_keys: i64,
}

/// What the database holds, and what was pruned.
struct StorageView {
    /// What holds the bytes, and how many (for a person).
    parts: Vec<(&'static str, String)>,
    /// Tombstones by reason.
    tombstones: Vec<(String, i64)>,
    /// Jobs this process pruned since it started.
    pruned_expired: u64,
    pruned_deleted: u64,
    /// The retention settings in words.
    retention: String,
}

async fn storage_view(state: &AppState) -> Result<StorageView, ApiError> {
    let db = state.db();
    let (parts, tombstones) = tokio::join!(stats::stored_bytes(db), stats::tombstones(db));
    let metrics = &state.deps.metrics;
    let pruned = |reason: &str| metrics.jobs_pruned.with_label_values(&[reason]).get();
    Ok(StorageView {
        parts: parts?
            .into_iter()
            .map(|(what, bytes)| (what, bytes_label(bytes)))
            .collect(),
        tombstones: tombstones?,
        pruned_expired: pruned("expired"),
        pruned_deleted: pruned("deleted"),
        retention: retention_label(state.deps.store.retention()),
    })
}

/// `12.3 MB`: a size as an operator reads it.
pub(super) fn bytes_label(bytes: i64) -> String {
    let b = bytes.max(0) as f64;
    match b {
        b if b >= 1e9 => format!("{:.2} GB", b / 1e9),
        b if b >= 1e6 => format!("{:.1} MB", b / 1e6),
        b if b >= 1e3 => format!("{:.1} kB", b / 1e3),
        _ => format!("{bytes} B"),
    }
}

/// "results kept 7 days, tombstones 30 days": the retention settings in words.
pub(super) fn retention_label(retention: crate::config::Retention) -> String {
    let days = |d: std::time::Duration| {
        let days = d.as_secs_f64() / 86_400.0;
        if days >= 1.0 {
            format!("{} days", (days * 10.0).round() / 10.0)
        } else {
            format!("{} s", d.as_secs())
        }
    };
    let results = retention.result_ttl.map_or("forever".to_owned(), days);
    format!(
        "results kept {results} after a job ends, then 410 Gone for {}",
        days(retention.tombstone_ttl)
    )
}

/// Alive: seen within [`ALIVE_BEATS`] beats and not stopped.
fn worker_view(w: WorkerRow) -> WorkerView {
    let alive_for = (BEAT * ALIVE_BEATS).as_secs() as i64;
    let state = if w.stopped_at.is_some() {
        "stopped"
    } else if w.last_seen.seconds_ago() <= alive_for {
        "alive"
    } else {
        "dead"
    };
    WorkerView {
        started: w.started_at.relative(),
        last_seen_ago: w.last_seen.relative(),
        name: w.name,
        role: w.role,
        host: w.host,
        pid: w.pid,
        queues: w.queues,
        concurrency: w.concurrency,
        started_at: w.started_at.to_string(),
        last_seen: w.last_seen.to_string(),
        state,
    }
}

/// The queue's own entry counts, or why they could not be read. They are a bonus: a Redis outage
/// must not take the dashboard with it, that is when an operator needs it most.
fn entry_views(
    entries: Result<Vec<(String, String, i64)>, StoreError>,
) -> (Vec<EntryView>, Option<String>) {
    match entries {
        Ok(entries) => (
            entries
                .into_iter()
                .map(|(queue, state, count)| EntryView {
                    queue,
                    state,
                    count,
                })
                .collect(),
            None,
        ),
        Err(e) => {
            tracing::warn!(
                target: super::LOG_TARGET,
                error = %e,
                "dashboard: queue entries not read"
            );
            (Vec::new(), Some(e.to_string()))
        }
    }
}

/// `GET /admin`.
pub(super) async fn dashboard(state: web::Data<AppState>) -> HttpResponse {
    match dashboard_page(&state).await {
        Ok(page) => super::page(StatusCode::OK, page.render()),
        Err(e) => e.error_response(),
    }
}

async fn dashboard_page(state: &AppState) -> Result<Dashboard, ApiError> {
    let db = state.db();
    let storage = storage_view(state).await?;
    let (depths, minutes, workers, failures, cancelled_jobs, open, entries, webhooks, api_keys) = tokio::join!(
        stats::depths(db),
        stats::throughput(db, MINUTES),
        registry::list(db, WORKERS_LIST),
        stats::latest(db, "failed", LIST),
        stats::latest(db, "cancelled", CANCELLED_LIST),
        stats::open_jobs(db, LIST),
        state.deps.store.entry_counts(),
        webhooks::failing(db, LIST),
        crate::keys::active_count(db),
    );
    let (depths, minutes, workers, webhooks) = (depths?, minutes?, workers?, webhooks?);
    let (failures, cancelled_jobs, open) = (failures?, cancelled_jobs?, open?);
    let (entries, entries_error) = entry_views(entries);
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
        generated_at: Timestamp::now().clock(),
        queued_total: depths.iter().map(|d| d.queued).sum(),
        depths: depths
            .into_iter()
            .map(|d| DepthView {
                longest_wait: d
                    .oldest_queued_at
                    .map(Timestamp::relative)
                    .unwrap_or_default(),
                queue: d.queue.to_string(),
                queued: d.queued,
                running: d.running,
            })
            .collect(),
        entries,
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
        failing_webhooks: webhooks.into_iter().map(DeliveryView::new).collect(),
        list_limit: LIST,
        storage,
        api_keys: api_keys?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
