//! Waiting instead of polling (RFC 7240 `Prefer: wait`): a submission that waits for its job, a
//! status long-poll that answers when the job changes, the cap on waiting requests, and waits
//! that end on changes made elsewhere (another web process and a worker on PostgreSQL + Redis,
//! a separate worker on the embedded queue). Every answer is checked against the OpenAPI
//! document as well.

use std::time::{Duration, Instant};

use reqwest::header::{CONTENT_LOCATION, ETAG, IF_NONE_MATCH, LOCATION, RETRY_AFTER};
use serde_json::{Value, json};

use crate::api::conforms;
use crate::common::prod::spawn_prod;
use crate::common::{self, Api, assert_error, spawn_app, spawn_app_with};

const PREFER: &str = "prefer";
const APPLIED: &str = "preference-applied";

async fn openapi(api: &Api) -> Value {
    let r = api.client.get(api.url("/api/openapi.json")).send().await;
    r.unwrap().json().await.unwrap()
}

/// `POST /api/jobs` of one sentence with these `Prefer` values; the answer and how long it took.
async fn submit_preferring(api: &Api, prefer: &[&str]) -> (reqwest::Response, Duration) {
    let mut request = api
        .client
        .post(api.url("/api/jobs"))
        .json(&json!({"text": "The waiting was worth it, lovely!"}));
    for p in prefer {
        request = request.header(PREFER, *p);
    }
    let started = Instant::now();
    let r = request.send().await.unwrap();
    (r, started.elapsed())
}

/// `GET /api/jobs/{id}` with `If-None-Match: etag` (if any) and `Prefer: wait=secs` (if any).
async fn long_poll(
    api: &Api,
    id: &str,
    etag: Option<&str>,
    secs: Option<u64>,
) -> (reqwest::Response, Duration) {
    let mut request = api.client.get(api.url(&format!("/api/jobs/{id}")));
    if let Some(etag) = etag {
        request = request.header(IF_NONE_MATCH, etag);
    }
    if let Some(secs) = secs {
        request = request.header(PREFER, format!("wait={secs}"));
    }
    let started = Instant::now();
    let r = request.send().await.unwrap();
    (r, started.elapsed())
}

async fn etag_of(api: &Api, id: &str) -> String {
    let (r, _) = long_poll(api, id, None, None).await;
    r.headers()[ETAG].to_str().unwrap().to_owned()
}

fn header(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submission_that_prefers_to_wait_gets_its_final_job_with_200() {
    let app = spawn_app().await;
    let doc = openapi(&app).await;
    let (r, took) = submit_preferring(&app, &["respond-async, wait=5; x=\"a,b\""]).await;
    assert_eq!(r.status(), 200, "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert_eq!(header(&r, APPLIED).as_deref(), Some("wait=5"));
    let location = header(&r, LOCATION.as_str()).unwrap();
    assert_eq!(
        header(&r, CONTENT_LOCATION.as_str()),
        Some(location.clone())
    );
    let etag = header(&r, ETAG.as_str()).unwrap();
    let body = conforms(&doc, "post", "/api/jobs", r).await.unwrap();
    let job: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["result"]["items"], 1);
    assert_eq!(
        location,
        format!("/api/jobs/{}", job["id"].as_str().unwrap())
    );
    // The same job, version and body that the status URL answers.
    let status = app.client.get(app.url(&location)).send().await.unwrap();
    assert_eq!(header(&status, ETAG.as_str()), Some(etag));
    assert_eq!(status.json::<Value>().await.unwrap(), job);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submission_whose_job_cannot_finish_in_time_answers_202_after_the_wait() {
    let app = spawn_app_with(|c| c.worker.run_in_process = false).await;
    let doc = openapi(&app).await;
    let (r, took) = submit_preferring(&app, &["wait=1"]).await;
    assert_eq!(r.status(), 202);
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(4),
        "{took:?}"
    );
    assert_eq!(header(&r, APPLIED).as_deref(), Some("wait=1"));
    assert_eq!(header(&r, RETRY_AFTER.as_str()).as_deref(), Some("1"));
    let body = conforms(&doc, "post", "/api/jobs", r).await.unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["status"],
        "queued"
    );
    // `wait=0` and no preference: at once, and no wait is said to be applied.
    for prefer in [&["wait=0"][..], &["respond-async"], &[]] {
        let (r, took) = submit_preferring(&app, prefer).await;
        assert_eq!(r.status(), 202, "{prefer:?}");
        assert!(took < Duration::from_millis(900), "{prefer:?}: {took:?}");
        assert_eq!(header(&r, APPLIED), None, "{prefer:?}");
        conforms(&doc, "post", "/api/jobs", r).await.unwrap();
    }
    assert_eq!(app.job_rows().await, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_out_of_range_is_400_bad_prefer_and_writes_no_job() {
    let app = spawn_app_with(|c| c.worker.run_in_process = false).await;
    let doc = openapi(&app).await;
    for bad in ["wait=26", "wait=abc", "wait=-1", "respond-async, wait=2.5"] {
        let (r, took) = submit_preferring(&app, &[bad]).await;
        assert!(took < Duration::from_secs(1));
        let message = assert_error(r, 400, "bad_prefer").await;
        assert!(message.contains("Prefer: wait"), "{message}");
    }
    let (r, _) = submit_preferring(&app, &["wait=30"]).await;
    conforms(&doc, "post", "/api/jobs", r).await.unwrap();
    assert_eq!(app.job_rows().await, 0);
    let id = app.submit(&json!({"text": "Fine."})).await;
    let r = app
        .client
        .get(app.url(&format!("/api/jobs/{id}")))
        .header(PREFER, "wait=100")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    conforms(&doc, "get", "/api/jobs/{id}", r).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_poll_answers_as_soon_as_the_job_changes() {
    let app = spawn_app_with(|c| c.worker.run_in_process = false).await;
    let doc = openapi(&app).await;
    let id = app
        .submit(&json!({"text": "Cancel me while I am watched."}))
        .await;
    let etag = etag_of(&app, &id).await;
    let (polled, cancelled) = tokio::join!(long_poll(&app, &id, Some(&etag), Some(8)), async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let cancel = app.url(&format!("/api/jobs/{id}/cancel"));
        let r = app.client.post(cancel).send().await.unwrap();
        assert_eq!(r.status(), 200);
        Instant::now()
    });
    let (r, took) = polled;
    let after_cancel = cancelled.elapsed();
    assert_eq!(r.status(), 200);
    assert!(took >= Duration::from_millis(450), "it waited: {took:?}");
    // The wait was 8 s; it ended with the change.
    assert!(after_cancel < Duration::from_secs(2), "{took:?}");
    assert_eq!(header(&r, APPLIED).as_deref(), Some("wait=8"));
    let new_etag = header(&r, ETAG.as_str()).unwrap();
    assert_ne!(new_etag, etag);
    let body = conforms(&doc, "get", "/api/jobs/{id}", r).await.unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["status"],
        "cancelled"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_poll_of_an_unchanged_job_answers_304_after_the_wait_and_others_at_once() {
    let app = spawn_app_with(|c| c.worker.run_in_process = false).await;
    let doc = openapi(&app).await;
    let id = app.submit(&json!({"text": "Nothing happens to me."})).await;
    let etag = etag_of(&app, &id).await;
    let (r, took) = long_poll(&app, &id, Some(&etag), Some(1)).await;
    assert_eq!(r.status(), 304);
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert_eq!(header(&r, APPLIED).as_deref(), Some("wait=1"));
    assert_eq!(header(&r, ETAG.as_str()), Some(etag.clone()));
    conforms(&doc, "get", "/api/jobs/{id}", r).await.unwrap();
    // Nothing to wait for: without If-None-Match, or with one the job no longer matches.
    let stale = format!("\"{id}-0\"");
    for inm in [None, Some(stale.as_str())] {
        let (r, took) = long_poll(&app, &id, inm, Some(5)).await;
        assert_eq!(r.status(), 200, "{inm:?}");
        assert!(took < Duration::from_millis(900), "{inm:?}: {took:?}");
        assert_eq!(header(&r, APPLIED), None);
        conforms(&doc, "get", "/api/jobs/{id}", r).await.unwrap();
    }
    // A long-poll of a job that does not exist is a 404 at once.
    let unknown = uuid::Uuid::new_v4().to_string();
    let (r, took) = long_poll(&app, &unknown, Some("*"), Some(5)).await;
    assert!(took < Duration::from_millis(900), "{took:?}");
    assert_error(r, 404, "not_found").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_cap_a_long_poll_gets_503_and_a_submission_answers_at_once() {
    let app = spawn_app_with(|c| {
        c.worker.run_in_process = false;
        c.limits.max_waiters = 1;
    })
    .await;
    let doc = openapi(&app).await;
    let id = app.submit(&json!({"text": "Watched by one."})).await;
    let etag = etag_of(&app, &id).await;
    let (first, second, submitted) = tokio::join!(
        long_poll(&app, &id, Some(&etag), Some(2)),
        async {
            tokio::time::sleep(Duration::from_millis(400)).await;
            long_poll(&app, &id, Some(&etag), Some(2)).await
        },
        async {
            tokio::time::sleep(Duration::from_millis(400)).await;
            submit_preferring(&app, &["wait=5"]).await
        },
    );
    assert_eq!(first.0.status(), 304);
    let (r, took) = second;
    assert!(took < Duration::from_millis(900), "{took:?}");
    assert_eq!(header(&r, RETRY_AFTER.as_str()).as_deref(), Some("2"));
    let body = conforms(&doc, "get", "/api/jobs/{id}", r).await.unwrap();
    assert!(body.contains("too_many_waiters"), "{body}");
    // The job is written before its wait begins: the wait is not applied, nothing refused.
    let (r, took) = submitted;
    assert_eq!(r.status(), 202);
    assert!(took < Duration::from_millis(900), "{took:?}");
    assert_eq!(header(&r, APPLIED), None);
    // Once the first wait is over, its place is free again.
    let (r, _) = long_poll(&app, &id, Some(&etag), Some(1)).await;
    assert_eq!(r.status(), 304);
}

/// On PostgreSQL + Redis, with two web apps on one database and namespace (each with its own
/// change signals, as separate processes have: only Redis carries them across) and a worker.
/// The poll interval there is 10 s, so an answer within the 8 s wait came by a signal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waits_end_on_changes_made_by_another_web_process_and_by_a_worker() {
    let a = spawn_prod(|_| {}).await;
    let b_app = sentiq::startup::Application::build(a.config.clone())
        .await
        .expect("a second web app builds");
    let b = Api::new(b_app.port());
    let b_server = tokio::spawn(b_app.run_until_stopped());

    // No worker yet: the job stays queued until A cancels it, while B long-polls it.
    let id = a
        .submit(&json!({"text": "Watched from the other side."}))
        .await;
    let etag = etag_of(&b, &id).await;
    let (polled, cancelled) = tokio::join!(long_poll(&b, &id, Some(&etag), Some(8)), async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let r = a
            .client
            .post(a.url(&format!("/api/jobs/{id}/cancel")))
            .send();
        assert_eq!(r.await.unwrap().status(), 200);
        Instant::now()
    });
    let (r, took) = polled;
    assert_eq!(r.status(), 200, "{took:?}");
    assert!(cancelled.elapsed() < Duration::from_secs(3), "{took:?}");
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "cancelled");

    // A submission to B that waits while a worker (its own signals too) runs the job.
    let worker = a.worker();
    let (r, took) = submit_preferring(&b, &["wait=8"]).await;
    assert_eq!(r.status(), 200, "{took:?}");
    assert!(took < Duration::from_secs(6), "{took:?}");
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "succeeded");
    worker.stop().await;
    b_server.abort();
}

/// The embedded queue with its worker in another process: no signal reaches the web process,
/// whose waits see the change by re-reading the row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_sees_a_job_finished_by_a_separate_embedded_worker() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = sentiq::config::Config::default();
    config.http.host = "127.0.0.1".into();
    config.http.port = 0;
    config.database.url = format!("sqlite://{}?mode=rwc", dir.path().join("w.db").display());
    config.worker.run_in_process = false;
    config.queue.poll_interval = Duration::from_millis(50);
    let web = sentiq::startup::Application::build(config.clone())
        .await
        .expect("web builds");
    let api = Api::new(web.port());
    let server = tokio::spawn(web.run_until_stopped());
    let worker = common::prod::start_worker(&config, |_| {});
    let (r, took) = submit_preferring(&api, &["wait=5"]).await;
    assert_eq!(r.status(), 200, "{took:?}");
    assert!(took < Duration::from_secs(4), "{took:?}");
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "succeeded");
    worker.stop().await;
    server.abort();
}
