//! Prometheus metrics of this process: HTTP requests, and jobs as this process sees them.
//!
//! Each event is counted where it happens, once: a submission and a cancel in the web process
//! that answered it, a start, a success or a failure in the worker that ran the job. So in the
//! production topology every process exposes its own counters and Prometheus sums them across
//! processes (scrape each `serve` at `/metrics` and each `sentiq worker` at `METRICS_PORT`), as
//! with any multi-process exporter. The gauges read from the database (`sentiq_jobs`,
//! `sentiq_queue_entries`) are cluster-wide and the same from every process.
//!
//! The registry belongs to the application (tests start many in one process), not to a global.

use crate::jobs::store::StoreError;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry, TextEncoder,
};

/// Seconds: from 1 ms to about 18 minutes, each bucket 4 times the last.
const JOB_BUCKETS: &[f64] = &[
    0.001, 0.004, 0.016, 0.064, 0.256, 1.024, 4.096, 16.384, 65.536, 262.144, 1048.576,
];
/// Seconds: from 0.5 ms to about 8 s, each bucket 2 to 2.5 times the last.
const HTTP_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 8.0,
];

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub jobs_submitted: IntCounterVec,
    pub jobs_started: IntCounterVec,
    pub jobs_succeeded: IntCounterVec,
    pub jobs_failed: IntCounterVec,
    pub jobs_cancelled: IntCounterVec,
    /// Jobs whose input, items and report were removed, by reason (`expired`, `deleted`).
    pub jobs_pruned: IntCounterVec,
    /// Tombstones removed after `TOMBSTONE_TTL`.
    pub tombstones_removed: IntCounter,
    /// Run time of finished runs (succeeded or failed), by queue.
    pub job_duration: HistogramVec,
    /// From submission to the first start, by queue.
    pub queue_wait: HistogramVec,
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
    /// Webhook attempts made by this process, by what became of the delivery.
    pub webhook_deliveries: IntCounterVec,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("a valid counter");
            registry
                .register(Box::new(c.clone()))
                .expect("registered once");
            c
        };
        let histogram = |name: &str, help: &str, labels: &[&str], buckets: &[f64]| {
            let h = HistogramVec::new(
                HistogramOpts::new(name, help).buckets(buckets.to_vec()),
                labels,
            )
            .expect("a valid histogram");
            registry
                .register(Box::new(h.clone()))
                .expect("registered once");
            h
        };
        Metrics {
            jobs_submitted: counter(
                "sentiq_jobs_submitted_total",
                "Jobs accepted by this web process.",
                &["queue"],
            ),
            jobs_started: counter(
                "sentiq_jobs_started_total",
                "Runs started by this process (a retried job starts again).",
                &["queue"],
            ),
            jobs_succeeded: counter(
                "sentiq_jobs_succeeded_total",
                "Jobs that succeeded in this process.",
                &["queue"],
            ),
            jobs_failed: counter(
                "sentiq_jobs_failed_total",
                "Jobs that failed in this process, by error code.",
                &["queue", "code"],
            ),
            jobs_cancelled: counter(
                "sentiq_jobs_cancelled_total",
                "Jobs cancelled through this web process.",
                &["queue"],
            ),
            jobs_pruned: counter(
                "sentiq_jobs_pruned_total",
                "Jobs whose input, items and report this process removed, by reason: expired \
                 (RESULT_TTL, by the pruner of a worker) or deleted (DELETE, by a web process).",
                &["reason"],
            ),
            tombstones_removed: {
                let c = IntCounter::new(
                    "sentiq_tombstones_removed_total",
                    "Rows of expired or deleted jobs this process removed after TOMBSTONE_TTL.",
                )
                .expect("a valid counter");
                registry
                    .register(Box::new(c.clone()))
                    .expect("registered once");
                c
            },
            job_duration: histogram(
                "sentiq_job_duration_seconds",
                "Run time of jobs that succeeded or failed in this process.",
                &["queue"],
                JOB_BUCKETS,
            ),
            queue_wait: histogram(
                "sentiq_job_queue_wait_seconds",
                "Time from submission to the first start of jobs started by this process.",
                &["queue"],
                JOB_BUCKETS,
            ),
            http_requests: counter(
                "sentiq_http_requests_total",
                "HTTP requests answered, by route pattern, method and status.",
                &["route", "method", "status"],
            ),
            http_duration: histogram(
                "sentiq_http_request_duration_seconds",
                "Time to the response head, by route pattern and method.",
                &["route", "method"],
                HTTP_BUCKETS,
            ),
            webhook_deliveries: counter(
                "sentiq_webhook_deliveries_total",
                "Webhook delivery attempts made by this process, by outcome: delivered (2xx), \
                 retry (another attempt is scheduled), failed (the retry schedule ran out), \
                 stopped (the receiver answered 410 Gone).",
                &["outcome"],
            ),
            registry,
        }
    }

    /// Count a finished HTTP request. `route` is the matched pattern (`/api/jobs/{id}`), so
    /// job ids do not become labels.
    pub fn http(&self, route: &str, method: &str, status: u16, seconds: f64) {
        self.http_requests
            .with_label_values(&[route, method, status_str(status)])
            .inc();
        self.http_duration
            .with_label_values(&[route, method])
            .observe(seconds);
    }

    /// The Prometheus text of this process's metrics.
    pub fn render(&self, out: &mut String) {
        let mut buf = Vec::new();
        if TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .is_ok()
        {
            out.push_str(&String::from_utf8_lossy(&buf));
        }
    }
}

/// Status codes as labels without an allocation for the common ones.
fn status_str(status: u16) -> &'static str {
    match status {
        200 => "200",
        202 => "202",
        204 => "204",
        303 => "303",
        304 => "304",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        410 => "410",
        405 => "405",
        409 => "409",
        413 => "413",
        415 => "415",
        422 => "422",
        429 => "429",
        500 => "500",
        503 => "503",
        s if s < 300 => "2xx",
        s if s < 400 => "3xx",
        s if s < 500 => "4xx",
        _ => "5xx",
    }
}

/// The Prometheus text of `/metrics`: cluster-wide gauges read from the database and the
/// queue, then this process's counters and histograms ([`Metrics`]).
pub async fn text(deps: &crate::deps::Deps) -> Result<String, StoreError> {
    use std::fmt::Write;
    let jobs = crate::jobs::model::counts(deps.db()).await?;
    let entries = deps.store.entry_counts().await?;
    let pending_webhooks = crate::jobs::webhooks::pending_count(deps.db()).await?;
    let mut out = String::new();
    let _ = writeln!(out, "# HELP sentiq_jobs Jobs by queue and status.");
    let _ = writeln!(out, "# TYPE sentiq_jobs gauge");
    for (queue, status, n) in &jobs {
        let _ = writeln!(
            out,
            "sentiq_jobs{{queue=\"{queue}\",status=\"{status}\"}} {n}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP sentiq_queue_entries Queue entries by queue and state."
    );
    let _ = writeln!(out, "# TYPE sentiq_queue_entries gauge");
    for (queue, status, n) in &entries {
        let status = status.to_ascii_lowercase();
        let _ = writeln!(
            out,
            "sentiq_queue_entries{{queue=\"{queue}\",state=\"{status}\"}} {n}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP sentiq_webhook_deliveries_pending Webhook deliveries of final jobs not yet \
         delivered, stopped or failed."
    );
    let _ = writeln!(out, "# TYPE sentiq_webhook_deliveries_pending gauge");
    let _ = writeln!(out, "sentiq_webhook_deliveries_pending {pending_webhooks}");
    deps.metrics.render(&mut out);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_histograms_show_in_the_text_with_their_labels() {
        let m = Metrics::new();
        m.jobs_submitted.with_label_values(&["quick"]).inc();
        m.job_duration.with_label_values(&["bulk"]).observe(0.5);
        m.http("/api/jobs/{id}", "GET", 304, 0.002);
        let mut out = String::new();
        m.render(&mut out);
        assert!(
            out.contains("sentiq_jobs_submitted_total{queue=\"quick\"} 1"),
            "{out}"
        );
        assert!(out.contains("sentiq_job_duration_seconds_bucket{queue=\"bulk\",le=\"1.024\"} 1"));
        assert!(out.contains("sentiq_job_duration_seconds_bucket{queue=\"bulk\",le=\"0.256\"} 0"));
        assert!(out.contains(
            "sentiq_http_requests_total{method=\"GET\",route=\"/api/jobs/{id}\",status=\"304\"} 1"
        ));
    }
}
